//! [`Store`] in an embedded SQLite file.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use provision_provider::{Addresses, Role};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::paths::create_private_dir;
use super::{ClusterExport, Store, StoreError};
use super::{ClusterRecord, Event, Health, NodePhase, NodeRecord, Resource, UnhealthyKind};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clusters (
    name       TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    spec       TEXT NOT NULL,
    phase      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    cluster    TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    machine_id TEXT,
    address    TEXT, -- the SSH address
    phase      TEXT NOT NULL,
    health     TEXT NOT NULL,
    host_key   TEXT,
    member_id  TEXT,
    retiring   INTEGER NOT NULL DEFAULT 0,
    reason     TEXT,
    unhealthy_since INTEGER,
    machine_created_at INTEGER,
    failures   INTEGER NOT NULL DEFAULT 0,
    retry_at   INTEGER,
    updated_at TEXT NOT NULL,
    private_address TEXT,
    public_address  TEXT,
    unhealthy_kind  TEXT,
    start_attempt   INTEGER NOT NULL DEFAULT 1,
    launch_token    TEXT,
    managers_seen   TEXT,
    conditions      TEXT,
    pool            TEXT,
    zone            TEXT,
    machine         TEXT,
    cert_expires    INTEGER,
    ca_expires      INTEGER,
    PRIMARY KEY (cluster, name)
);
CREATE TABLE IF NOT EXISTS resources (
    cluster    TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (cluster, kind, id)
);
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    at      TEXT NOT NULL,
    node    TEXT,
    message TEXT NOT NULL
);
-- Events are read and pruned per cluster, newest first.
CREATE INDEX IF NOT EXISTS events_by_cluster ON events (cluster, seq);
";

/// Events kept per cluster: older ones are deleted as new ones come, so a
/// daemon that runs for months keeps a state file of bounded size.
pub const EVENTS_KEPT: usize = 1000;

/// The default store: one SQLite file, private to the user. WAL mode and a
/// busy timeout let several processes share it; the per-cluster lock keeps
/// them off the same cluster.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: String,
    /// The directory beside the file: cluster files live under `clusters/`.
    root: PathBuf,
    events_kept: usize,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let io = |source| StoreError::Io {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io)?;
        }
        // Create the file 0600 before SQLite opens it, and tighten an old one.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
        let sql = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        migrate(&conn).map_err(sql)?;
        let root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: shown,
            root,
            events_kept: EVENTS_KEPT,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Keeps the newest `kept` events a cluster (the default is
    /// [`EVENTS_KEPT`]); for tests of the pruning.
    pub fn keeping_events(mut self, kept: usize) -> SqliteStore {
        self.events_kept = kept;
        self
    }

    /// Where a cluster's file lives: as [`super::StatePaths`] lays it out.
    fn file_path(&self, cluster: &str, name: &str) -> PathBuf {
        self.root.join("clusters").join(cluster).join(name)
    }

    fn corrupt(&self, what: &str, message: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.to_string(),
            message,
        }
    }

    fn cluster_from_row(
        &self,
        row: (String, String, String, String, String),
    ) -> Result<ClusterRecord, StoreError> {
        let (name, id, spec, phase, created_at_updated) = row;
        let (created_at, updated_at) = created_at_updated
            .split_once('|')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap_or_default();
        let spec = serde_json::from_str(&spec)
            .map_err(|e| self.corrupt(&format!("cluster {name}"), e.to_string()))?;
        Ok(ClusterRecord {
            spec,
            id,
            phase,
            created_at,
            updated_at,
        })
    }
}

fn cluster_row(row: &Row) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        format!("{}|{}", row.get::<_, String>(4)?, row.get::<_, String>(5)?),
    ))
}

const CLUSTER_COLUMNS: &str = "name, id, spec, phase, created_at, updated_at";
const NODE_COLUMNS: &str =
    "cluster, name, role, idx, machine_id, address, phase, health, host_key, member_id, \
     retiring, reason, unhealthy_since, machine_created_at, failures, retry_at, updated_at, \
     private_address, public_address, unhealthy_kind, start_attempt, launch_token, managers_seen, \
     conditions, pool, zone, machine, cert_expires, ca_expires";

/// Columns added since the first release, with what an older row gets:
/// before a machine had two addresses, its one address served for both.
const NODE_COLUMNS_ADDED: &[(&str, &str, &str)] = &[
    (
        "private_address",
        "TEXT",
        "UPDATE nodes SET private_address = address",
    ),
    ("public_address", "TEXT", ""),
    ("unhealthy_kind", "TEXT", ""),
    ("start_attempt", "INTEGER NOT NULL DEFAULT 1", ""),
    ("launch_token", "TEXT", ""),
    ("managers_seen", "TEXT", ""),
    // The planner's reasons about the node, as JSON (state::Reason).
    ("conditions", "TEXT", ""),
    ("pool", "TEXT", ""),
    ("zone", "TEXT", ""),
    ("machine", "TEXT", ""),
    ("cert_expires", "INTEGER", ""),
    ("ca_expires", "INTEGER", ""),
];

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('nodes')")?;
    let present = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (column, kind, fill) in NODE_COLUMNS_ADDED {
        if !present.iter().any(|c| c == column) {
            conn.execute_batch(&format!("ALTER TABLE nodes ADD COLUMN {column} {kind}"))?;
            if !fill.is_empty() {
                conn.execute_batch(fill)?;
            }
        }
    }
    Ok(())
}

fn addresses_of(
    ssh: Option<String>,
    private: Option<String>,
    public: Option<String>,
) -> Option<Addresses> {
    Some(Addresses {
        private: private?,
        public,
        ssh: ssh?,
    })
}

fn node_row(row: &Row) -> rusqlite::Result<NodeRecord> {
    let role: String = row.get(2)?;
    let phase: String = row.get(6)?;
    let health: String = row.get(7)?;
    Ok(NodeRecord {
        cluster: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Worker),
        index: row.get(3)?,
        machine_id: row.get(4)?,
        addresses: addresses_of(row.get(5)?, row.get(17)?, row.get(18)?),
        phase: NodePhase::parse(&phase).unwrap_or(NodePhase::Failed),
        health: Health::parse(&health),
        host_key: row.get(8)?,
        member_id: row.get(9)?,
        retiring: row.get(10)?,
        reason: row.get(11)?,
        unhealthy_since: row.get(12)?,
        machine_created_at: row.get(13)?,
        failures: row.get(14)?,
        retry_at: row.get(15)?,
        updated_at: row.get(16)?,
        unhealthy_kind: row
            .get::<_, Option<String>>(19)?
            .as_deref()
            .and_then(UnhealthyKind::parse),
        start_attempt: row.get(20)?,
        launch_token: row.get(21)?,
        managers_seen: row.get(22)?,
        // Unreadable conditions (a newer release's reasons) are dropped:
        // the next pass records what it finds.
        conditions: row
            .get::<_, Option<String>>(23)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        pool: row.get(24)?,
        zone: row.get(25)?,
        machine: row.get(26)?,
        cert_expires: row.get(27)?,
        ca_expires: row.get(28)?,
    })
}

fn insert_node(conn: &Connection, n: &NodeRecord, updated_at: &str) -> rusqlite::Result<()> {
    conn.execute(
            &format!(
                "INSERT OR REPLACE INTO nodes ({NODE_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)"
            ),
            params![
                n.cluster,
                n.name,
                n.role.as_str(),
                n.index,
                n.machine_id,
                n.addresses.as_ref().map(|a| &a.ssh),
                n.phase.as_str(),
                n.health.as_str(),
                n.host_key,
                n.member_id,
                n.retiring,
                n.reason,
                n.unhealthy_since,
                n.machine_created_at,
                n.failures,
                n.retry_at,
                updated_at,
                n.addresses.as_ref().map(|a| &a.private),
                n.addresses.as_ref().and_then(|a| a.public.as_ref()),
                n.unhealthy_kind.map(UnhealthyKind::as_str),
                n.start_attempt,
                n.launch_token,
                n.managers_seen,
                (!n.conditions.is_empty())
                    .then(|| serde_json::to_string(&n.conditions).expect("reasons serialise")),
                n.pool,
                n.zone,
                n.machine,
                n.cert_expires,
                n.ca_expires,
            ],
        )
        .map(|_| ())
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.clone()
    }

    fn put_cluster(&self, c: &ClusterRecord) -> Result<(), StoreError> {
        let spec = serde_json::to_string(&c.spec).expect("a spec always serialises");
        let now = now();
        self.with(|conn| {
            conn.execute(
                "INSERT INTO clusters (name, id, spec, phase, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT(name) DO UPDATE SET spec = ?3, phase = ?4, updated_at = ?5",
                params![c.spec.name, c.id, spec, c.phase, now],
            )
            .map(|_| ())
        })
    }

    fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StoreError> {
        let row = self.with(|conn| {
            conn.query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
                params![name],
                cluster_row,
            )
            .optional()
        })?;
        row.map(|r| self.cluster_from_row(r)).transpose()
    }

    fn clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"
            ))?;
            let rows = stmt.query_map([], cluster_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(|r| self.cluster_from_row(r)).collect()
    }

    fn cluster_names(&self) -> Result<Vec<String>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM clusters ORDER BY name")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })
    }

    fn set_cluster_phase(&self, name: &str, phase: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE clusters SET phase = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, phase, now()],
            )
            .map(|_| ())
        })
    }

    fn delete_cluster(&self, name: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM clusters WHERE name = ?1", params![name])
                .map(|_| ())
        })?;
        for file in super::CLUSTER_FILES {
            let path = self.file_path(name, file);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn put_node(&self, n: &NodeRecord) -> Result<(), StoreError> {
        self.with(|conn| insert_node(conn, n, &now()))
    }

    fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {NODE_COLUMNS} FROM nodes WHERE cluster = ?1 ORDER BY role, idx"
            ))?;
            let rows = stmt.query_map(params![cluster], node_row)?;
            rows.collect()
        })
    }

    fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE cluster = ?1 AND name = ?2"),
                params![cluster, node],
                node_row,
            )
            .optional()
        })
    }

    fn delete_node(&self, cluster: &str, node: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM nodes WHERE cluster = ?1 AND name = ?2",
                params![cluster, node],
            )
            .map(|_| ())
        })
    }

    fn add_event(
        &self,
        cluster: &str,
        node: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO events (cluster, at, node, message) VALUES (?1, ?2, ?3, ?4)",
                params![cluster, now(), node, message],
            )?;
            conn.execute(
                "DELETE FROM events WHERE cluster = ?1 AND seq <=
                   (SELECT seq FROM events WHERE cluster = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                params![cluster, self.events_kept as i64],
            )
            .map(|_| ())
        })
    }

    fn put_resource(&self, cluster: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO resources (cluster, kind, id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![cluster, kind, id, now()],
            )
            .map(|_| ())
        })
    }

    fn resources(&self, cluster: &str) -> Result<Vec<Resource>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT kind, id, created_at FROM resources WHERE cluster = ?1 ORDER BY created_at, kind, id",
            )?;
            let rows = stmt.query_map(params![cluster], |r| {
                Ok(Resource {
                    kind: r.get(0)?,
                    id: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT at, node, message FROM
                   (SELECT seq, at, node, message FROM events WHERE cluster = ?1 ORDER BY seq DESC LIMIT ?2)
                 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![cluster, limit as i64], |r| {
                Ok(Event {
                    at: r.get(0)?,
                    node: r.get(1)?,
                    message: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn put_file(&self, cluster: &str, name: &str, contents: &[u8]) -> Result<(), StoreError> {
        let path = self.file_path(cluster, name);
        super::write_private_file(&path, contents).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    fn file(&self, cluster: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.file_path(cluster, name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn file_location(&self, cluster: &str, name: &str) -> String {
        self.file_path(cluster, name).display().to_string()
    }

    fn import_cluster(&self, c: &ClusterExport) -> Result<(), StoreError> {
        let r = &c.record;
        let spec = serde_json::to_string(&r.spec).expect("a spec always serialises");
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute("DELETE FROM clusters WHERE name = ?1", params![r.spec.name])?;
            tx.execute(
                "INSERT INTO clusters (name, id, spec, phase, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.spec.name, r.id, spec, r.phase, r.created_at, r.updated_at],
            )?;
            for n in &c.nodes {
                insert_node(&tx, n, &n.updated_at)?;
            }
            for res in &c.resources {
                tx.execute(
                    "INSERT INTO resources (cluster, kind, id, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![r.spec.name, res.kind, res.id, res.created_at],
                )?;
            }
            for e in &c.events {
                tx.execute(
                    "INSERT INTO events (cluster, at, node, message) VALUES (?1, ?2, ?3, ?4)",
                    params![r.spec.name, e.at, e.node, e.message],
                )?;
            }
            tx.commit()
        })?;
        for name in c.files.keys() {
            if let Some(bytes) = c.file(name) {
                self.put_file(&r.spec.name, name, &bytes)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClusterSpec;

    fn record(name: &str) -> ClusterRecord {
        ClusterRecord {
            spec: ClusterSpec::example(name, 1, 2),
            id: format!("id-{name}"),
            phase: "creating".into(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn both_addresses_and_conditions_round_trip_and_an_old_row_gets_its_one_address_for_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            // A state file from before nodes had two addresses.
            let conn = Connection::open(&path).unwrap();
            let old = SCHEMA
                .replace("    private_address TEXT,\n    public_address  TEXT,\n", "")
                .replace("    conditions      TEXT,\n", "");
            assert!(!old.contains("private_address") && !old.contains("conditions"));
            conn.execute_batch(&old).unwrap();
            conn.execute(
                "INSERT INTO clusters VALUES ('web', 'id-web', ?1, 'ready', 't', 't')",
                params![serde_json::to_string(&record("web").spec).unwrap()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO nodes (cluster, name, role, idx, address, phase, health, updated_at)
                 VALUES ('web', 'web-manager-1', 'manager', 1, '10.1.0.2', 'ready', 'healthy', 't')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = store.node("web", "web-manager-1").unwrap().unwrap();
        assert_eq!(old.addresses, Some(Addresses::private_only("10.1.0.2")));
        assert!(old.conditions.is_empty());

        let mut n = NodeRecord::new("web", "web-worker-1", Role::Worker, 1);
        n.addresses = Some(Addresses {
            private: "10.0.0.7".into(),
            public: Some("198.51.100.7".into()),
            ssh: "198.51.100.7".into(),
        });
        n.conditions = vec![crate::state::Reason::BackingOff {
            node: "web-worker-1".into(),
            attempt: crate::state::Attempt::Start,
        }];
        store.put_node(&n).unwrap();
        let got = store.node("web", "web-worker-1").unwrap().unwrap();
        assert_eq!(got.addresses, n.addresses);
        assert_eq!(got.conditions, n.conditions);
    }

    #[test]
    fn only_the_newest_events_of_each_cluster_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store.events_kept = 3;
        for name in ["web", "db"] {
            store.put_cluster(&record(name)).unwrap();
        }
        store.add_event("db", None, "db only").unwrap();
        for i in 1..=5 {
            store.add_event("web", None, &format!("e{i}")).unwrap();
        }
        let web: Vec<String> = store
            .events("web", 10)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(web, ["e3", "e4", "e5"]);
        assert_eq!(
            store.events("db", 10).unwrap().len(),
            1,
            "another cluster's are kept"
        );
    }

    #[test]
    fn clusters_nodes_and_events_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        store.put_cluster(&record("web")).unwrap();
        let got = store.cluster("web").unwrap().unwrap();
        assert_eq!(got.spec, record("web").spec);
        assert_eq!(got.id, "id-web");

        let mut n = NodeRecord::new("web", "web-worker-1", Role::Worker, 1);
        n.machine_id = Some("abc".into());
        n.phase = NodePhase::Ready;
        store.put_node(&n).unwrap();
        let nodes = store.nodes("web").unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            store.node("web", "web-worker-1").unwrap().as_ref(),
            Some(&nodes[0])
        );
        assert!(store.node("web", "web-worker-9").unwrap().is_none());
        assert_eq!(nodes[0].machine_id.as_deref(), Some("abc"));
        assert_eq!(nodes[0].phase, NodePhase::Ready);

        store.add_event("web", Some("web-worker-1"), "one").unwrap();
        store.add_event("web", None, "two").unwrap();
        let events = store.events("web", 1).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].message, "two");

        store.put_resource("web", "security-group", "sg-1").unwrap();
        store.put_resource("web", "security-group", "sg-1").unwrap();
        let resources = store.resources("web").unwrap();
        assert_eq!(resources.len(), 1);
        assert_eq!(
            (resources[0].kind.as_str(), resources[0].id.as_str()),
            ("security-group", "sg-1")
        );

        store.delete_cluster("web").unwrap();
        assert!(store.cluster("web").unwrap().is_none());
        assert!(store.nodes("web").unwrap().is_empty());
        assert!(store.resources("web").unwrap().is_empty());
    }

    #[test]
    fn database_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/state.db");
        SqliteStore::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
