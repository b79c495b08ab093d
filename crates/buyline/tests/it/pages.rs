//! Pages (filled in with the pages module).
