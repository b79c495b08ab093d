//! Follows, profiles, posts and timelines on SQL, with the group commit of posts on SQLite.

use crate::read::Cols;
use crate::{json_err, other, placeholders, rows_of, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::model::{Author, NewPost, Post, Profile};
use buyline_core::store::{AccountStore, Before, SocialStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// A post (with its cart job or not) waiting for the group commit, and who to tell.
pub(crate) struct PostWrite {
    post: NewPost,
    cart_job: bool,
    done: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

/// Most posts written in one group-commit transaction.
pub(crate) const POST_GROUP: usize = 256;

pub(crate) const POST_SELECT: &str =
    "select p.id, p.author_id, a.handle, a.display_name, p.text, p.entities, p.reply_to, \
     p.product_id, p.created_at from posts p join accounts a on a.id = p.author_id";

/// Writes posts, and the cart jobs of those that have one, with one statement each.
pub(crate) async fn write_posts(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    posts: &[(&NewPost, bool)],
) -> StoreResult<()> {
    let sql = format!(
        "insert into posts (id, author_id, text, entities, reply_to, product_id, created_at) values {}",
        rows_of(posts.len(), 7, 1)
    );
    let mut q = sqlx::query(&sql);
    for (p, _) in posts {
        q = q
            .bind(&p.id)
            .bind(&p.author_id)
            .bind(&p.text)
            .bind(serde_json::to_string(&p.entities).map_err(json_err)?)
            .bind(&p.reply_to)
            .bind(&p.product_id)
            .bind(p.created_at);
    }
    q.execute(&mut **tx).await.map_err(other)?;
    // The hashtag index, in the same transaction (and the same batch) as the posts.
    let mut tags: Vec<(String, &NewPost)> = Vec::new();
    for (p, _) in posts {
        let mut mine: Vec<String> = p.entities.hashtags.iter().map(|h| buyline_core::cart::tag_key(&h.tag)).collect();
        mine.sort();
        mine.dedup();
        tags.extend(mine.into_iter().filter(|t| !t.is_empty()).map(|t| (t, *p)));
    }
    // A post holds up to ~90 tags; chunks keep a statement under SQLite's 32,766 parameters.
    for chunk in tags.chunks(1000) {
        let sql = format!("insert into post_tags (tag, post_id, created_at) values {}", rows_of(chunk.len(), 3, 1));
        let mut q = sqlx::query(&sql);
        for (tag, p) in chunk {
            q = q.bind(tag.as_str()).bind(&p.id).bind(p.created_at);
        }
        q.execute(&mut **tx).await.map_err(other)?;
    }
    let jobs: Vec<&NewPost> = posts.iter().filter(|(_, job)| *job).map(|(p, _)| *p).collect();
    if !jobs.is_empty() {
        let sql = format!(
            "insert into cart_jobs (post_id, account_id, parent_id, state, created_at) values {}",
            (0..jobs.len())
                .map(|k| {
                    let pending = buyline_core::cart::CartJobState::Pending.as_str();
                    format!("(${}, ${}, ${}, '{pending}', ${})", 4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 4)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql);
        for p in jobs {
            q = q.bind(&p.id).bind(&p.author_id).bind(&p.reply_to).bind(p.created_at);
        }
        q.execute(&mut **tx).await.map_err(other)?;
    }
    Ok(())
}

/// Group commit of posts on SQLite: takes every post waiting (up to [`POST_GROUP`]) and
/// writes them in one transaction, one fsync for all. If that fails (one post's parent was
/// deleted a moment ago, say), each is written alone, so only the bad one fails.
pub(crate) async fn group_commit_posts(writer: AnyPool, mut rx: tokio::sync::mpsc::Receiver<PostWrite>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < POST_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        let together: Vec<(&NewPost, bool)> = group.iter().map(|w| (&w.post, w.cart_job)).collect();
        let result = async {
            let mut tx = writer.begin_with("begin immediate").await.map_err(other)?;
            write_posts(&mut tx, &together).await?;
            tx.commit().await.map_err(other)
        }
        .await;
        if result.is_ok() || group.len() == 1 {
            for w in group {
                let _ = w.done.send(result.clone());
            }
            continue;
        }
        for w in group {
            let alone = async {
                let mut tx = writer.begin_with("begin immediate").await.map_err(other)?;
                write_posts(&mut tx, &[(&w.post, w.cart_job)]).await?;
                tx.commit().await.map_err(other)
            }
            .await;
            let _ = w.done.send(alone);
        }
    }
}

pub(crate) fn post_row(r: &impl Cols) -> StoreResult<Post> {
    let entities: String = r.col("entities")?;
    Ok(Post {
        id: r.col("id")?,
        author: Author { id: r.col("author_id")?, handle: r.col("handle")?, display_name: r.col("display_name")? },
        text: r.col("text")?,
        created_at: r.col("created_at")?,
        reply_to: r.col("reply_to")?,
        product_id: r.col("product_id")?,
        entities: serde_json::from_str(&entities).map_err(json_err)?,
    })
}

impl Db {
    /// A newest-first page of posts matching `cond`, whose only parameter (if any) is `$1`,
    /// bound to `value`.
    async fn posts_where(
        &self,
        cond: &str,
        value: Option<&str>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Post>> {
        let n = value.is_some() as usize;
        let page = match before {
            Some(_) => format!(
                "and (p.created_at < ${a} or (p.created_at = ${a} and p.id < ${b})) order by p.created_at desc, p.id desc limit ${c}",
                a = n + 1,
                b = n + 2,
                c = n + 3
            ),
            None => format!("order by p.created_at desc, p.id desc limit ${}", n + 1),
        };
        let sql = format!("{POST_SELECT} where {cond} {page}");
        let mut q = sqlx::query(&sql);
        if let Some(v) = value {
            q = q.bind(v);
        }
        if let Some((ts, id)) = before {
            q = q.bind(ts).bind(id);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(post_row).collect()
    }
}

#[async_trait]
impl SocialStore for Db {
    async fn insert_follow(&self, follower: &str, followee: &str, at: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into follows (follower_id, followee_id, created_at) values ($1, $2, $3) \
             on conflict (follower_id, followee_id) do nothing",
        )
        .bind(follower)
        .bind(followee)
        .bind(at)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn delete_follow(&self, follower: &str, followee: &str) -> StoreResult<()> {
        sqlx::query("delete from follows where follower_id = $1 and followee_id = $2")
            .bind(follower)
            .bind(followee)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_profile(&self, handle: &str, viewer: Option<&str>) -> StoreResult<Option<Profile>> {
        let Some(account) = self.find_account_by_handle(handle).await? else { return Ok(None) };
        let r = sqlx::query(
            "select (select count(*) from follows where followee_id = $1) as followers, \
                    (select count(*) from follows where follower_id = $1) as following, \
                    (select count(*) from follows where follower_id = $2 and followee_id = $1) as viewer_follows, \
                    (select min(id) from merchants where account_id = $1) as merchant_id",
        )
        .bind(&account.id)
        .bind(viewer.unwrap_or(""))
        .fetch_one(&self.pool)
        .await
        .map_err(other)?;
        let viewer_follows: i64 = r.try_get("viewer_follows").map_err(other)?;
        Ok(Some(Profile {
            followers: r.try_get("followers").map_err(other)?,
            following: r.try_get("following").map_err(other)?,
            followed_by_viewer: viewer_follows > 0,
            merchant_id: r.try_get("merchant_id").map_err(other)?,
            account,
        }))
    }

    async fn insert_post(&self, p: &NewPost, cart_job: bool) -> StoreResult<()> {
        match &self.posts {
            Some(queue) => {
                let (done, answer) = tokio::sync::oneshot::channel();
                let write = PostWrite { post: p.clone(), cart_job, done };
                queue.send(write).await.map_err(|_| StoreError::Other("the post writer has stopped".into()))?;
                answer.await.map_err(|_| StoreError::Other("the post writer has stopped".into()))?
            }
            None => {
                let mut tx = self.begin().await?;
                write_posts(&mut tx, &[(p, cart_job)]).await?;
                tx.commit().await.map_err(other)
            }
        }
    }

    async fn delete_post(&self, id: &str, author_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let mine = sqlx::query("select 1 from posts where id = $1 and author_id = $2")
            .bind(id)
            .bind(author_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(other)?;
        if mine.is_none() {
            return Ok(false);
        }
        sqlx::query("update posts set reply_to = null where reply_to = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        sqlx::query("delete from posts where id = $1").bind(id).execute(&mut *tx).await.map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn find_post(&self, id: &str) -> StoreResult<Option<Post>> {
        // On the purchase path (a post's Buy): read on the calling thread on SQLite.
        let sql = format!("{POST_SELECT} where p.id = $1");
        Ok(self.read_rows(&sql, crate::args![id], post_row, |r| post_row(r)).await?.pop())
    }

    async fn find_replies(&self, id: &str, limit: i64) -> StoreResult<Vec<Post>> {
        let sql = format!("{POST_SELECT} where p.reply_to = $1 order by p.created_at, p.id limit $2");
        let rows = sqlx::query(&sql).bind(id).bind(limit).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(post_row).collect()
    }

    async fn find_home_timeline(&self, viewer: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        self.posts_where(
            // Twitter's rule: a reply only when the viewer follows (or is) both its author
            // and the author of the post it answers.
            "(p.author_id = $1 or p.author_id in (select followee_id from follows where follower_id = $1)) \
             and (p.reply_to is null or exists (select 1 from posts q where q.id = p.reply_to \
                  and (q.author_id = $1 or q.author_id in (select followee_id from follows where follower_id = $1))))",
            Some(viewer),
            before,
            limit,
        )
        .await
    }

    async fn find_posts_by_author(&self, author: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        self.posts_where("p.author_id = $1", Some(author), before, limit).await
    }

    async fn find_recent_posts(&self, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        self.posts_where("p.reply_to is null", None, before, limit).await
    }

    async fn find_posts(&self, ids: &[String]) -> StoreResult<Vec<Post>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = ids.iter().collect();
        let sql = format!("{POST_SELECT} where p.id in ({})", placeholders(1, refs.len()));
        self.fetch_in(&sql, &refs).await?.iter().map(post_row).collect()
    }

    async fn find_follow_handles(&self, account_id: &str) -> StoreResult<(Vec<String>, Vec<String>)> {
        let following = sqlx::query(
            "select a.handle from follows f join accounts a on a.id = f.followee_id where f.follower_id = $1 order by a.handle",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let followers = sqlx::query(
            "select a.handle from follows f join accounts a on a.id = f.follower_id where f.followee_id = $1 order by a.handle",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let h = |rows: Vec<AnyRow>| {
            rows.iter().map(|r| r.try_get("handle").map_err(other)).collect::<StoreResult<Vec<String>>>()
        };
        Ok((h(following)?, h(followers)?))
    }

    async fn find_followee_ids(&self, follower: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("select followee_id from follows where follower_id = $1")
            .bind(follower)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(|r| r.try_get("followee_id").map_err(other)).collect()
    }
}
