//! `export_page`: the active sessions, page by page in key order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlite3store::{Result, SqliteStore};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn export_pages_walk_the_active_sessions_in_key_order() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::builder(dir.path().join("s.db"))
        .cleanup_interval(Duration::ZERO)
        .build()?;
    let now = SystemTime::now();
    let expiry = |i: u64| now + HOUR + Duration::from_millis(i);
    for i in [3, 0, 4, 1, 2] {
        store.commit(&format!("k{i}"), format!("d{i}").as_bytes(), expiry(i))?;
    }
    store.commit("k1-dead", b"x", now - HOUR)?;
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = store.export_page(&after, 2)?;
        let Some(last) = page.last() else { break };
        after = last.token.clone();
        pages += 1;
        seen.extend(page);
    }
    assert_eq!(pages, 3, "pages of 2, 2 and 1");
    let keys: Vec<_> = seen.iter().map(|e| e.token.as_str()).collect();
    assert_eq!(
        keys,
        ["k0", "k1", "k2", "k3", "k4"],
        "key order, no expired row"
    );
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis());
    for (i, session) in seen.iter().map(|e| &e.session).enumerate() {
        assert_eq!(session.data, format!("d{i}").as_bytes());
        assert_eq!(
            ms(session.expiry).ok(),
            ms(expiry(i as u64)).ok(),
            "expiry to the ms"
        );
    }
    assert!(
        store.export_page("k4", 10)?.is_empty(),
        "nothing after the last key"
    );
    Ok(())
}
