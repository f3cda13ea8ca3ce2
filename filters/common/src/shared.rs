//! Shared data: the only state every Envoy worker sees. One process-wide map per `vm_id`
//! behind one mutex, values copied on every access, no atomic increment and no expiry. Updates
//! are read → modify → write-if-unchanged (compare-and-swap on the token the read returned),
//! retried a bounded number of times.

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// Another worker wrote the key since it was read.
    CasMismatch,
    /// The host refused the call.
    Host(String),
}

/// The host's shared-data calls.
pub trait SharedStore {
    /// The value and its CAS token, or `None` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String>;
    /// Writes `value` if the key's token still equals `cas`. A `cas` of 0 writes
    /// unconditionally, and so does any write to a key that does not exist yet (the host has
    /// no create-if-absent), which is why callers make sure each key has a single creator.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

/// What an update function decided after looking at the current value.
pub enum Update<T> {
    /// Write this value (if nobody else wrote in between), then return `T`.
    Write(Vec<u8>, T),
    /// Leave the value as it is and return `T`.
    Keep(T),
}

/// Why [`cas_update`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasError {
    /// Every attempt lost the race to another worker.
    Contended,
    Host(String),
}

impl std::fmt::Display for CasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CasError::Contended => write!(f, "other workers kept winning the compare-and-swap"),
            CasError::Host(e) => write!(f, "{e}"),
        }
    }
}

/// Applies `f` to the key's current value until the write succeeds without interference,
/// at most `max_attempts` times. `f` sees `None` for a missing key; the write then creates it.
pub fn cas_update<S, T, F>(
    store: &S,
    key: &str,
    max_attempts: u32,
    f: F,
) -> Result<(T, u32), CasError>
where
    S: SharedStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> Update<T>,
{
    update_loop(store, key, None, max_attempts, f)
}

/// Whether [`cas_update_remembering`] first tries to write on its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speculate {
    /// For updates that usually write (an outcome): one host call instead of two when nobody
    /// wrote since the snapshot.
    Yes,
    /// For updates that usually keep (an admission): they read anyway; trying the snapshot
    /// first would only cost a second run of `f`.
    No,
}

/// The last value one worker read of one key, with its token: a later update of that key can
/// write without reading it again, on the condition that nobody wrote since (the host's tokens
/// only grow, so a token that still matches means the value is still current). Its buffers are
/// kept when it is used up, so remembering allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Snapshot {
    key: String,
    value: Vec<u8>,
    /// 0: holds nothing usable.
    cas: u32,
}

impl Snapshot {
    fn holds(&self, key: &str) -> bool {
        self.cas != 0 && self.key == key
    }
}

/// [`cas_update`] that remembers: a read that ends in [`Update::Keep`] becomes `snapshot`, and
/// with [`Speculate::Yes`] the first attempt writes what `f` makes of the snapshot (when it holds
/// this key), conditional on its token: one host call instead of two. If someone wrote since (or
/// `f` would keep the snapshot, which is not proof that the value is current) it goes on as
/// `cas_update` does. A write uses the snapshot up (its new token is unknown).
pub fn cas_update_remembering<S, T, F>(
    store: &S,
    key: &str,
    snapshot: &mut Snapshot,
    speculate: Speculate,
    max_attempts: u32,
    mut f: F,
) -> Result<(T, u32), CasError>
where
    S: SharedStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> Update<T>,
{
    if speculate == Speculate::Yes && snapshot.holds(key) {
        let cas = std::mem::take(&mut snapshot.cas); // used up, whatever happens
        if let Update::Write(bytes, result) = f(Some(&snapshot.value)) {
            match store.set(key, &bytes, cas) {
                Ok(()) => return Ok((result, 1)),
                Err(SetError::CasMismatch) => {}
                Err(SetError::Host(e)) => return Err(CasError::Host(e)),
            }
        }
    }
    update_loop(store, key, Some(snapshot), max_attempts, f)
}

/// Read → `f` → compare-and-swap, retried; with a snapshot, a read that ends in Keep is
/// remembered there and a write invalidates it. Without one, nothing is copied.
fn update_loop<S, T, F>(
    store: &S,
    key: &str,
    mut snapshot: Option<&mut Snapshot>,
    max_attempts: u32,
    mut f: F,
) -> Result<(T, u32), CasError>
where
    S: SharedStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> Update<T>,
{
    for attempt in 1..=max_attempts.max(1) {
        let current = store.get(key).map_err(CasError::Host)?;
        let (value, cas) = match &current {
            Some((bytes, cas)) => (Some(bytes.as_slice()), *cas),
            None => (None, 0),
        };
        match f(value) {
            Update::Keep(result) => {
                if let (Some(snapshot), Some((value, cas))) = (snapshot.as_deref_mut(), current) {
                    if snapshot.key != key {
                        snapshot.key.clear();
                        snapshot.key.push_str(key);
                    }
                    snapshot.value = value;
                    snapshot.cas = cas;
                }
                return Ok((result, attempt));
            }
            Update::Write(bytes, result) => match store.set(key, &bytes, cas) {
                Ok(()) => {
                    if let Some(snapshot) = snapshot.filter(|s| s.holds(key)) {
                        snapshot.cas = 0; // its token is stale now
                    }
                    return Ok((result, attempt));
                }
                Err(SetError::CasMismatch) => continue,
                Err(SetError::Host(e)) => return Err(CasError::Host(e)),
            },
        }
    }
    Err(CasError::Contended)
}

/// An in-memory store with the host's exact CAS semantics (a global, increasing token; 0 and
/// missing keys write unconditionally), for tests of every filter. It can inject a competing
/// write to exercise the retry path.
#[derive(Default)]
pub struct MemoryStore {
    inner: std::cell::RefCell<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    map: std::collections::HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// Writes to perform just before the next `set`, as another worker would.
    interleaved: Vec<(String, Vec<u8>)>,
    fail_writes: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Makes another "worker" write `value` to `key` right before the next write attempt.
    pub fn interleave_write(&self, key: &str, value: &[u8]) {
        self.inner
            .borrow_mut()
            .interleaved
            .push((key.to_string(), value.to_vec()));
    }

    /// Makes every later write fail with a host error.
    pub fn fail_writes(&self) {
        self.inner.borrow_mut().fail_writes = true;
    }

    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.borrow().map.get(key).map(|(v, _)| v.clone())
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.inner.borrow().map.keys().cloned().collect();
        keys.sort();
        keys
    }

    fn store(inner: &mut MemoryInner, key: &str, value: &[u8]) {
        inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
        let cas = inner.next_cas;
        inner.map.insert(key.to_string(), (value.to_vec(), cas));
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(self.inner.borrow().map.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut inner = self.inner.borrow_mut();
        if inner.fail_writes {
            return Err(SetError::Host("injected failure".to_string()));
        }
        let pending = std::mem::take(&mut inner.interleaved);
        for (k, v) in pending {
            MemoryStore::store(&mut inner, &k, &v);
        }
        if let Some((_, current)) = inner.map.get(key) {
            if cas != 0 && cas != *current {
                return Err(SetError::CasMismatch);
            }
        }
        MemoryStore::store(&mut inner, key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    fn increment(store: &MemoryStore, attempts: u32) -> Result<(u8, u32), CasError> {
        cas_update(store, "k", attempts, |v| {
            let n = v.and_then(|b| b.first().copied()).unwrap_or(0) + 1;
            Update::Write(vec![n], n)
        })
    }

    #[test]
    fn creates_then_increments() {
        let store = MemoryStore::new();
        assert_eq!(increment(&store, 3), Ok((1, 1)));
        assert_eq!(increment(&store, 3), Ok((2, 1)));
        assert_eq!(store.raw("k"), Some(vec![2]));
    }

    #[test]
    fn retries_after_a_competing_write_and_keeps_it() {
        let store = MemoryStore::new();
        increment(&store, 3).unwrap();
        // Another worker bumps the value to 10 between our read and our write.
        store.interleave_write("k", &[10]);
        assert_eq!(increment(&store, 3), Ok((11, 2)));
        assert_eq!(store.raw("k"), Some(vec![11]));
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let store = MemoryStore::new();
        increment(&store, 3).unwrap();
        store.interleave_write("k", &[10]);
        assert_eq!(increment(&store, 1), Err(CasError::Contended));
        assert_eq!(
            store.raw("k"),
            Some(vec![10]),
            "the competing write survives"
        );
    }

    #[test]
    fn keep_does_not_write() {
        let store = MemoryStore::new();
        let r = cas_update(&store, "k", 3, |_| Update::<()>::Keep(()));
        assert_eq!(r, Ok(((), 1)));
        assert!(store.raw("k").is_none());
    }

    /// Counts the store's calls, to prove which ones the snapshot saves.
    struct Counting<'a> {
        store: &'a MemoryStore,
        gets: std::cell::Cell<u32>,
        sets: std::cell::Cell<u32>,
    }

    impl SharedStore for Counting<'_> {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            self.gets.set(self.gets.get() + 1);
            self.store.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            self.sets.set(self.sets.get() + 1);
            self.store.set(key, value, cas)
        }
    }

    fn counting(store: &MemoryStore) -> Counting<'_> {
        Counting {
            store,
            gets: 0.into(),
            sets: 0.into(),
        }
    }

    fn read(store: &impl SharedStore, snapshot: &mut Snapshot) -> Option<u8> {
        cas_update_remembering(store, "k", snapshot, Speculate::No, 3, |v| {
            Update::Keep(v.and_then(|b| b.first().copied()))
        })
        .unwrap()
        .0
    }

    fn bump_remembering(store: &impl SharedStore, snapshot: &mut Snapshot) -> (u8, u32) {
        cas_update_remembering(store, "k", snapshot, Speculate::Yes, 3, |v| {
            let n = v.and_then(|b| b.first().copied()).unwrap_or(0) + 1;
            Update::Write(vec![n], n)
        })
        .unwrap()
    }

    #[test]
    fn a_snapshot_saves_the_read_of_the_next_write() {
        let store = MemoryStore::new();
        increment(&store, 3).unwrap();
        let counted = counting(&store);
        let mut snapshot = Snapshot::default();
        assert_eq!(read(&counted, &mut snapshot), Some(1));
        assert_eq!(bump_remembering(&counted, &mut snapshot), (2, 1));
        assert_eq!((counted.gets.get(), counted.sets.get()), (1, 1));
        assert!(!snapshot.holds("k"), "a write uses the snapshot up");
        // Without a snapshot the next write reads first.
        assert_eq!(bump_remembering(&counted, &mut snapshot), (3, 1));
        assert_eq!((counted.gets.get(), counted.sets.get()), (2, 2));
        assert_eq!(store.raw("k"), Some(vec![3]));
    }

    #[test]
    fn a_stale_snapshot_never_overwrites_a_newer_value() {
        let store = MemoryStore::new();
        increment(&store, 3).unwrap();
        let mut snapshot = Snapshot::default();
        assert_eq!(read(&store, &mut snapshot), Some(1));
        // Another worker writes 10 after the snapshot was taken, and before our write.
        increment(&store, 3).unwrap();
        store.interleave_write("k", &[10]);
        let counted = counting(&store);
        assert_eq!(bump_remembering(&counted, &mut snapshot), (11, 1));
        assert_eq!(
            store.raw("k"),
            Some(vec![11]),
            "10 + 1, not the snapshot's 1 + 1"
        );
        assert_eq!((counted.gets.get(), counted.sets.get()), (1, 2));
    }

    #[test]
    fn a_snapshot_is_not_proof_for_keep_nor_for_another_key() {
        let store = MemoryStore::new();
        increment(&store, 3).unwrap();
        let mut snapshot = Snapshot::default();
        read(&store, &mut snapshot);
        store.interleave_write("k", &[7]);
        increment(&store, 3).unwrap(); // k = 8 now, the snapshot still says 1
        let counted = counting(&store);
        assert_eq!(
            read(&counted, &mut snapshot),
            Some(8),
            "Keep reads the current value"
        );
        assert_eq!(counted.gets.get(), 1);
        let r = cas_update_remembering(&counted, "other", &mut snapshot, Speculate::Yes, 3, |v| {
            Update::Write(vec![1], v.is_none())
        });
        assert_eq!(
            r,
            Ok((true, 1)),
            "the snapshot of k is not used for another key"
        );
        assert_eq!(store.raw("k"), Some(vec![8]));
    }

    #[test]
    fn without_speculation_the_snapshot_is_only_remembered_and_a_write_drops_it() {
        let store = MemoryStore::new();
        increment(&store, 3).unwrap();
        let counted = counting(&store);
        let mut snapshot = Snapshot::default();
        read(&counted, &mut snapshot);
        let r = cas_update_remembering(&counted, "k", &mut snapshot, Speculate::No, 3, |v| {
            let n = v.and_then(|b| b.first().copied()).unwrap_or(0) + 1;
            Update::Write(vec![n], n)
        });
        assert_eq!(r, Ok((2, 1)));
        assert_eq!(
            (counted.gets.get(), counted.sets.get()),
            (2, 1),
            "read again, not speculated"
        );
        assert!(
            !snapshot.holds("k"),
            "the write made the remembered token stale"
        );
    }

    #[test]
    fn host_errors_surface() {
        let store = MemoryStore::new();
        store.fail_writes();
        assert!(matches!(increment(&store, 3), Err(CasError::Host(_))));
    }
}
