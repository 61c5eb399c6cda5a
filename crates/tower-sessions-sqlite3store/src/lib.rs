//! tower-sessions store over sqlite3store (work in progress).
