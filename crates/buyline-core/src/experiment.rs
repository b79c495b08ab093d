//! The experiment's statistics (SPEC §2 Experiment), as pure functions: each arm's
//! conversion (distinct buyers over distinct shoppers reached), the lift of Buy over the
//! plain link, and a pooled two-proportion z-test with its two-sided p-value — the test
//! statsmodels' `proportions_ztest` runs. Nothing here is ever NaN or infinite: a value that
//! the counts cannot support is `None` (`null` in the funnel).

use serde::Serialize;

/// Significance level of the test: significant when `p_value < ALPHA`.
pub const ALPHA: f64 = 0.05;

/// One arm's counts that the statistics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Distinct shoppers reached.
    pub reach: u64,
    /// Distinct shoppers who bought.
    pub buyers: u64,
}

/// What the funnel reports beside the counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Comparison {
    pub conversion_buy: Option<f64>,
    pub conversion_holdout: Option<f64>,
    /// `buy / holdout − 1`; `None` when either arm has no reach or the holdout converts at 0.
    pub lift: Option<f64>,
    /// The z statistic (buy minus holdout); `None` when either arm has no reach.
    pub z: Option<f64>,
    /// Two-sided; `None` when either arm has no reach.
    pub p_value: Option<f64>,
    pub significant: bool,
}

/// Buyers over reach; `None` with no reach. A buyer the counter has not yet seen reach (the
/// impressions lag the orders by up to a second, or an order came by the API without a
/// timeline read) is counted as reached, so a conversion never exceeds 1.
pub fn conversion(s: Sample) -> Option<f64> {
    (s.reach > 0).then(|| s.buyers.min(s.reach) as f64 / s.reach as f64)
}

/// Compares the Buy arm with the holdout (the plain product link).
pub fn compare(buy: Sample, holdout: Sample) -> Comparison {
    let (cb, ch) = (conversion(buy), conversion(holdout));
    let (Some(p1), Some(p2)) = (cb, ch) else {
        return Comparison { conversion_buy: cb, conversion_holdout: ch, ..Default::default() };
    };
    let lift = (p2 > 0.0).then(|| p1 / p2 - 1.0);
    let (n1, n2) = (buy.reach as f64, holdout.reach as f64);
    let x = buy.buyers.min(buy.reach) as f64 + holdout.buyers.min(holdout.reach) as f64;
    let pooled = x / (n1 + n2);
    let var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    // Both arms convert at exactly 0 or exactly 1: no difference and no variance, so nothing
    // speaks against equality (statsmodels answers NaN here; the funnel says 1).
    let (z, p) = if var > 0.0 {
        let z = (p1 - p2) / var.sqrt();
        (z, two_sided_p(z))
    } else {
        (0.0, 1.0)
    };
    Comparison {
        conversion_buy: cb,
        conversion_holdout: ch,
        lift,
        z: Some(z),
        p_value: Some(p),
        significant: p < ALPHA,
    }
}

/// `P(|Z| ≥ |z|)` for a standard normal Z: `erfc(|z| / √2)`.
pub fn two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// The complementary error function for `x ≥ 0`, to about 1e-14 relative: below 3 by
/// `1 − erf(x)` with erf's series of positive terms (no cancellation), from 3 on by the
/// Laplace continued fraction evaluated backwards, which converges fast there.
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let two_over_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI;
    if x < 3.0 {
        // erf x = 2/√π · e^{-x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1))
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        return 1.0 - two_over_sqrt_pi * (-x2).exp() * sum;
    }
    // erfc x = e^{-x²}/√π · 1/(x + (1/2)/(x + (2/2)/(x + (3/2)/(x + …))))
    let mut t = x;
    for n in (1..=80).rev() {
        t = x + (n as f64 / 2.0) / t;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * t)
}

/// The verdict in words for the funnel page.
pub fn verdict(c: &Comparison) -> String {
    let (Some(cb), Some(ch), Some(_)) = (c.conversion_buy, c.conversion_holdout, c.p_value) else {
        return "not enough data yet".into();
    };
    if cb == 0.0 && ch == 0.0 {
        return "not enough data yet".into();
    }
    let sig = if c.significant { "significant" } else { "not significant yet" };
    if ch == 0.0 {
        return format!("Buy converts {:.1} % and the link has no buyers yet ({sig})", cb * 100.0);
    }
    let ratio = cb / ch;
    if ratio >= 1.0 {
        format!("Buy converts {ratio:.1}× better than the link ({sig})")
    } else {
        format!("Buy converts {ratio:.1}× as well as the link ({sig})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(reach: u64, buyers: u64) -> Sample {
        Sample { reach, buyers }
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_known_values() {
        // Values from scipy.special.erfc.
        assert!(close(erfc(0.0), 1.0, 1e-15));
        assert!(close(erfc(0.5), 0.4795001221869535, 1e-13));
        assert!(close(erfc(1.0), 0.15729920705028516, 1e-13));
        assert!(close(erfc(2.0), 0.004677734981047266, 1e-12));
        assert!(close(erfc(3.0), 2.209049699858544e-05, 1e-12));
        assert!(close(erfc(5.0), 1.537_459_794_428_035e-12, 1e-12));
        assert!(close(erfc(10.0), 2.088487583762545e-45, 1e-12));
        assert!(close(erfc(-1.0), 1.8427007929497148, 1e-13));
    }

    #[test]
    fn matches_statsmodels_proportions_ztest() {
        // statsmodels 0.15: proportions_ztest(count=[b_buy, b_holdout], nobs=[n_buy, n_holdout])
        // (pooled variance, two-sided); the numbers it printed are quoted here.
        for (buy, hold, z, p) in CASES {
            let c = compare(s(buy.0, buy.1), s(hold.0, hold.1));
            assert!(close(c.z.unwrap(), z, 1e-9), "{buy:?} {hold:?}: z {:?} vs {z}", c.z);
            assert!(close(c.p_value.unwrap(), p, 1e-7), "{buy:?} {hold:?}: p {:?} vs {p}", c.p_value);
            assert_eq!(c.significant, p < 0.05);
        }
    }

    /// ((reach, buyers) buy, (reach, buyers) holdout, z, p): statsmodels 0.15.0,
    /// `proportions_ztest([230, 100], [1000, 1000])` and so on.
    type Case = ((u64, u64), (u64, u64), f64, f64);
    const CASES: [Case; 3] = [
        // A clear win: 23 % against 10 %.
        ((1000, 230), (1000, 100), 7.831467403441269, 4.8220837773826334e-15),
        // Close: 4.3 % against 3.6 %, not significant.
        ((1200, 52), (1150, 41), 0.9547573258188244, 0.3397004324739743),
        // Buy loses against a small holdout: 0.18 % against 5 %.
        ((5000, 9), (40, 2), -6.506390780545839, 7.697782254448533e-11),
    ];

    #[test]
    fn nulls_without_reach_and_lift() {
        let c = compare(s(0, 0), s(10, 1));
        assert_eq!(c.conversion_buy, None);
        assert_eq!(c.conversion_holdout, Some(0.1));
        assert_eq!((c.lift, c.p_value, c.z, c.significant), (None, None, None, false));
        let c = compare(s(100, 23), s(100, 10));
        assert!(close(c.lift.unwrap(), 1.3, 1e-12));
        assert_eq!(verdict(&c), "Buy converts 2.3× better than the link (significant)");
        // Holdout converts at 0: lift undefined, the rest stands.
        let c = compare(s(100, 5), s(100, 0));
        assert_eq!(c.lift, None);
        assert!(c.p_value.is_some());
        // Nobody bought anywhere: no variance, p = 1, and the page says so.
        let c = compare(s(50, 0), s(50, 0));
        assert_eq!((c.z, c.p_value, c.significant), (Some(0.0), Some(1.0), false));
        assert_eq!(verdict(&c), "not enough data yet");
        assert_eq!(verdict(&compare(s(0, 0), s(0, 0))), "not enough data yet");
    }

    proptest! {
        #[test]
        fn p_is_a_probability_and_nothing_is_nan(
            n1 in 0u64..1_000_000, b1 in 0u64..1_000_000, n2 in 0u64..1_000_000, b2 in 0u64..1_000_000,
        ) {
            let c = compare(s(n1, b1), s(n2, b2));
            for v in [c.conversion_buy, c.conversion_holdout, c.lift, c.z, c.p_value].into_iter().flatten() {
                prop_assert!(v.is_finite());
            }
            if let Some(p) = c.p_value {
                prop_assert!((0.0..=1.0).contains(&p));
                prop_assert_eq!(c.significant, p < ALPHA);
            } else {
                prop_assert!(n1 == 0 || n2 == 0);
                prop_assert!(!c.significant);
            }
            if n1 == 0 || n2 == 0 {
                prop_assert!(c.p_value.is_none() && c.lift.is_none());
            }
            for v in [c.conversion_buy, c.conversion_holdout].into_iter().flatten() {
                prop_assert!((0.0..=1.0).contains(&v));
            }
        }

        #[test]
        fn symmetric_under_swapping_arms(
            n1 in 1u64..100_000, b1 in 0u64..100_000, n2 in 1u64..100_000, b2 in 0u64..100_000,
        ) {
            let a = compare(s(n1, b1), s(n2, b2));
            let b = compare(s(n2, b2), s(n1, b1));
            let (pa, pb) = (a.p_value.unwrap(), b.p_value.unwrap());
            prop_assert!((pa - pb).abs() <= 1e-12 * pa.max(1e-300), "{} {}", pa, pb);
            prop_assert!((a.z.unwrap() + b.z.unwrap()).abs() <= 1e-9 * a.z.unwrap().abs().max(1.0));
            prop_assert_eq!(a.significant, b.significant);
            prop_assert_eq!(a.conversion_buy, b.conversion_holdout);
        }

        #[test]
        fn p_falls_as_z_grows(z1 in 0.0f64..40.0, dz in 0.0f64..5.0) {
            prop_assert!(two_sided_p(z1 + dz) <= two_sided_p(z1) + 1e-15);
            prop_assert!((0.0..=1.0).contains(&two_sided_p(z1)));
        }
    }
}
