//! The last-good-response cache behind the `stale` source, kept in proxy-wasm shared data so that
//! every worker serves what any worker stored.
//!
//! Layout: one *index* key lists the entries (key hash, time stored, size, slot), and each entry
//! lives in one of `max_entries` *slot* keys. Slots are reused, so the number of shared-data keys
//! never exceeds `max_entries + 1` (shared data has no expiry, and removing keys is not part of
//! the ABI). Storing updates the index with compare-and-swap, evicting the oldest entries until
//! both `max_entries` and `max_bytes` hold. Lookups read the index, then the slot, and compare
//! the full request key so that a hash collision can never serve another URL's response.

use crate::config::{CacheLimits, StaleSource};
use breakwater_common::codec::{put_sized, Reader};
use breakwater_common::hash::fnv1a;
use breakwater_common::shared::{cas_update, CasError, SharedStore, Update};

const INDEX_VERSION: u8 = 1;
const ENTRY_VERSION: u8 = 1;
const CAS_ATTEMPTS: u32 = 16;

/// A request's identity in the cache: rule, method, authority, path with query, and the values
/// of the rule's `vary` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub text: Vec<u8>,
    pub hash: u64,
}

impl CacheKey {
    pub fn new(
        rule: &str,
        method: &[u8],
        authority: &[u8],
        path: &[u8],
        vary: &[(&str, Option<Vec<u8>>)],
    ) -> CacheKey {
        let mut text =
            Vec::with_capacity(rule.len() + method.len() + authority.len() + path.len() + 8);
        for part in [
            rule.as_bytes(),
            method,
            &authority.to_ascii_lowercase(),
            path,
        ] {
            text.extend_from_slice(part);
            text.push(b'\n');
        }
        for (name, value) in vary {
            text.extend_from_slice(name.as_bytes());
            match value {
                Some(v) => {
                    text.push(b'=');
                    text.extend_from_slice(v);
                }
                None => text.push(b'!'), // absent differs from empty
            }
            text.push(b'\n');
        }
        let hash = fnv1a(&text);
        CacheKey { text, hash }
    }
}

/// The `Cache-Control` directives that decide storing and staleness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub private: bool,
    /// `no-cache`, `must-revalidate` or `proxy-revalidate`: RFC 9111 §4.2.4 forbids serving the
    /// response stale, unless the upstream also sent `stale-if-error` (RFC 5861).
    pub revalidate: bool,
    pub max_age_s: Option<u64>,
    pub stale_if_error_s: Option<u64>,
}

/// Parses a `Cache-Control` value (RFC 9111 §5.2): comma-separated, case-insensitive directive
/// names, optional `=value` (quoted or not). Unknown directives are ignored.
pub fn parse_cache_control(value: &[u8]) -> Directives {
    let mut d = Directives::default();
    for item in value.split(|b| *b == b',') {
        let item = item.trim_ascii();
        let (name, arg) = match item.iter().position(|b| *b == b'=') {
            Some(i) => (item.get(..i).unwrap_or_default(), item.get(i + 1..)),
            None => (item, None),
        };
        let name = name.trim_ascii();
        let seconds = || {
            let raw = arg?.trim_ascii();
            let raw = raw
                .strip_prefix(b"\"")
                .and_then(|r| r.strip_suffix(b"\""))
                .unwrap_or(raw);
            std::str::from_utf8(raw).ok()?.parse::<u64>().ok()
        };
        if name.eq_ignore_ascii_case(b"no-store") {
            d.no_store = true;
        } else if name.eq_ignore_ascii_case(b"private") {
            d.private = true;
        } else if name.eq_ignore_ascii_case(b"no-cache")
            || name.eq_ignore_ascii_case(b"must-revalidate")
            || name.eq_ignore_ascii_case(b"proxy-revalidate")
        {
            d.revalidate = true;
        } else if name.eq_ignore_ascii_case(b"max-age") {
            d.max_age_s = seconds();
        } else if name.eq_ignore_ascii_case(b"stale-if-error") {
            d.stale_if_error_s = seconds();
        }
    }
    d
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Only GET and HEAD responses are stored.
    Method,
    /// The request carried `Authorization` or `Cookie` (and the rule does not allow it).
    Credentials,
    /// The status is not in the source's `statuses`.
    Status,
    NoStore,
    Private,
    /// `no-cache` / `must-revalidate` / `proxy-revalidate` without `stale-if-error`.
    Revalidate,
    /// The response varies on a request header the rule's `vary` does not list (or `Vary: *`).
    Vary,
    /// The response sets a cookie (and the rule does not allow credentials).
    SetCookie,
    /// The body is larger than `cache.max_body_bytes`.
    TooLarge,
}

/// Whether a request may have its response stored.
pub fn storable_request(
    method: &[u8],
    has_credentials: bool,
    stale: &StaleSource,
) -> Result<(), Skip> {
    if method != b"GET" && method != b"HEAD" {
        return Err(Skip::Method);
    }
    if has_credentials && !stale.allow_credentials {
        return Err(Skip::Credentials);
    }
    Ok(())
}

/// Whether a response may be stored, from its status and headers. `vary` is the response's
/// `Vary` value (all of them, comma separated).
pub fn storable_response(
    status: u32,
    directives: Directives,
    sets_cookie: bool,
    vary: Option<&[u8]>,
    stale: &StaleSource,
) -> Result<(), Skip> {
    if !stale.statuses.contains(status) {
        return Err(Skip::Status);
    }
    if directives.no_store {
        return Err(Skip::NoStore);
    }
    if directives.private {
        return Err(Skip::Private);
    }
    if directives.revalidate && directives.stale_if_error_s.is_none() {
        return Err(Skip::Revalidate);
    }
    if sets_cookie && !stale.allow_credentials {
        return Err(Skip::SetCookie);
    }
    // The stored representation is only right for requests that agree on every header the
    // upstream varies on: those headers must be part of the key.
    for name in vary.unwrap_or_default().split(|b| *b == b',') {
        let name = name.trim_ascii();
        if name.is_empty() {
            continue;
        }
        let keyed = stale
            .vary
            .iter()
            .any(|v| name.eq_ignore_ascii_case(v.as_bytes()));
        if name == b"*" || !keyed {
            return Err(Skip::Vary);
        }
    }
    Ok(())
}

/// How long after storing the upstream allows an entry to be served on errors: its own
/// `max-age` + `stale-if-error`, when it sent `stale-if-error`. Otherwise the rule's `max_age`
/// decides, read at lookup so that a config update applies to entries already stored.
pub fn upstream_keep_ms(directives: Directives) -> Option<u64> {
    directives.stale_if_error_s.map(|sie| {
        directives
            .max_age_s
            .unwrap_or(0)
            .saturating_add(sie)
            .saturating_mul(1000)
    })
}

/// Response headers kept with an entry: not hop-by-hop ones, not ones Envoy or the filter set
/// again when serving, never cookies.
pub fn keep_header(name: &[u8]) -> bool {
    const DROP: &[&[u8]] = &[
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"content-length",
        b"date",
        b"age",
        b"server",
        b"set-cookie",
        b"x-breakwater-fallback",
    ];
    !(name.starts_with(b":")
        || name.starts_with(b"x-envoy-")
        || DROP.iter().any(|d| name.eq_ignore_ascii_case(d)))
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    /// The key's hash, also recorded in the index.
    pub hash: u64,
    /// When the response was produced (now minus the upstream's `Age`); the index records the
    /// same value, and a lookup only trusts a slot whose entry matches it.
    pub stored_ms: u64,
    /// See [`upstream_keep_ms`].
    pub upstream_keep_ms: Option<u64>,
    pub status: u16,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(32 + self.key.len() + headers + self.body.len());
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.extend_from_slice(&self.stored_ms.to_le_bytes());
        out.extend_from_slice(&self.upstream_keep_ms.unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        put_sized(&mut out, &self.key);
        out.extend_from_slice(&u32::try_from(self.headers.len()).unwrap_or(0).to_le_bytes());
        for (name, value) in &self.headers {
            put_sized(&mut out, name);
            put_sized(&mut out, value);
        }
        put_sized(&mut out, &self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let mut r = Reader::new(bytes);
        if r.u8()? != ENTRY_VERSION {
            return None;
        }
        let hash = r.u64()?;
        let stored_ms = r.u64()?;
        let upstream_keep_ms = Some(r.u64()?).filter(|k| *k != u64::MAX);
        let status = r.u16()?;
        let key = r.sized()?.to_vec();
        let count = r.u32()?;
        let mut headers = Vec::new();
        for _ in 0..count {
            headers.push((r.sized()?.to_vec(), r.sized()?.to_vec()));
        }
        let body = r.sized()?.to_vec();
        r.is_empty().then_some(Entry {
            key,
            hash,
            stored_ms,
            upstream_keep_ms,
            status,
            headers,
            body,
        })
    }

    /// The hash of a stored entry, read without decoding the rest.
    pub fn peek_hash(bytes: &[u8]) -> Option<u64> {
        let mut r = Reader::new(bytes);
        (r.u8()? == ENTRY_VERSION).then_some(())?;
        r.u64()
    }

    /// The entry's age if it may still be served at `now_ms` under the rule's `max_age_ms`.
    pub fn age_if_servable(&self, now_ms: u64, max_age_ms: u64) -> Option<u64> {
        let age = now_ms.saturating_sub(self.stored_ms);
        (age <= self.upstream_keep_ms.unwrap_or(max_age_ms)).then_some(age)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub hash: u64,
    pub stored_ms: u64,
    pub size: u32,
    pub slot: u32,
}

/// The list of stored entries; small enough to copy on each store (24 bytes per entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub entries: Vec<IndexEntry>,
}

/// Where a new entry goes, how many entries were evicted to make room, and the now unused
/// slots with the hash of the entry they held (to be blanked if they still hold it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub slot: u32,
    pub evicted: u32,
    pub freed: Vec<(u32, u64)>,
}

impl Index {
    pub fn decode(bytes: &[u8]) -> Option<Index> {
        let mut r = Reader::new(bytes);
        if r.u8()? != INDEX_VERSION {
            return None;
        }
        let count = r.u32()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            entries.push(IndexEntry {
                hash: r.u64()?,
                stored_ms: r.u64()?,
                size: r.u32()?,
                slot: r.u32()?,
            });
        }
        r.is_empty().then_some(Index { entries })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.entries.len() * 24);
        out.push(INDEX_VERSION);
        out.extend_from_slice(&u32::try_from(self.entries.len()).unwrap_or(0).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.hash.to_le_bytes());
            out.extend_from_slice(&e.stored_ms.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.slot.to_le_bytes());
        }
        out
    }

    pub fn find(&self, hash: u64) -> Option<&IndexEntry> {
        self.entries.iter().find(|e| e.hash == hash)
    }

    pub fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.size)).sum()
    }

    /// Records an entry of `size` bytes for `hash` at `now_ms`, evicting the oldest entries
    /// until `max_entries` and `max_bytes` hold.
    pub fn place(&mut self, hash: u64, size: u32, now_ms: u64, limits: &CacheLimits) -> Placement {
        let mut evicted = Vec::new();
        // Drop anything beyond the limits first (they may have been lowered by a config push).
        let slot = match self.entries.iter().position(|e| e.hash == hash) {
            Some(at) => self.entries.remove(at).slot,
            None => {
                while self.entries.len() >= limits.max_entries.max(1) as usize {
                    if let Some(oldest) = self.evict_oldest() {
                        evicted.push(oldest);
                    }
                }
                self.free_slot(limits.max_entries)
            }
        };
        while self.bytes().saturating_add(u64::from(size)) > limits.max_bytes {
            match self.evict_oldest() {
                Some(freed) => evicted.push(freed),
                None => break,
            }
        }
        self.entries.push(IndexEntry {
            hash,
            stored_ms: now_ms,
            size,
            slot,
        });
        let count = u32::try_from(evicted.len()).unwrap_or(u32::MAX);
        // A freed slot that is reused right away must not be blanked afterwards.
        evicted.retain(|(s, _)| *s != slot);
        Placement {
            slot,
            evicted: count,
            freed: evicted,
        }
    }

    fn evict_oldest(&mut self) -> Option<(u32, u64)> {
        let at = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.stored_ms)
            .map(|(i, _)| i)?;
        let gone = self.entries.remove(at);
        Some((gone.slot, gone.hash))
    }

    /// The lowest slot number no entry uses (there is one: entries < max_entries here).
    fn free_slot(&self, max_entries: u32) -> u32 {
        let mut used = vec![false; max_entries.max(1) as usize];
        for e in &self.entries {
            if let Some(flag) = used.get_mut(e.slot as usize) {
                *flag = true;
            }
        }
        let free = used.iter().position(|u| !u).unwrap_or(0);
        u32::try_from(free).unwrap_or(0)
    }
}

/// What a store did, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreReport {
    pub evicted: u32,
    pub entries: u32,
    pub bytes: u64,
}

/// Why an entry was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The encoded entry alone is larger than `cache.max_bytes`.
    TooLarge,
    Shared(CasError),
}

/// The cache of one plugin, over any shared store.
pub struct Cache {
    index_key: String,
    slot_prefix: String,
    pub limits: CacheLimits,
}

impl Cache {
    /// `plugin_name` namespaces the keys: under Istio every plugin shares one `vm_id`.
    pub fn new(plugin_name: &str, limits: CacheLimits) -> Cache {
        let base = format!("breakwater.fallback/{plugin_name}");
        Cache {
            index_key: format!("{base}/index"),
            slot_prefix: format!("{base}/slot/"),
            limits,
        }
    }

    fn slot_key(&self, slot: u32) -> String {
        format!("{}{slot}", self.slot_prefix)
    }

    /// Creates the empty index if there is none, before traffic (shared data has no
    /// create-if-absent, so creating it during stores could lose a concurrent store).
    pub fn prepare<S: SharedStore + ?Sized>(&self, store: &S) {
        if let Ok(None) = store.get(&self.index_key) {
            let _ = store.set(&self.index_key, &Index::default().encode(), 0);
        }
    }

    /// Stores `entry`. Under concurrent stores that evict, an entry may be lost (a later
    /// lookup misses); a lookup never returns another key's or an older store's entry.
    pub fn store<S: SharedStore + ?Sized>(
        &self,
        store: &S,
        entry: &Entry,
    ) -> Result<StoreReport, StoreError> {
        let hash = entry.hash;
        let encoded = entry.encode();
        let size = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
        if u64::from(size) > self.limits.max_bytes {
            return Err(StoreError::TooLarge);
        }
        let limits = self.limits;
        let ((placement, report), _) = cas_update(store, &self.index_key, CAS_ATTEMPTS, |bytes| {
            let mut index = bytes.and_then(Index::decode).unwrap_or_default();
            let placement = index.place(hash, size, entry.stored_ms, &limits);
            let report = StoreReport {
                evicted: placement.evicted,
                entries: u32::try_from(index.entries.len()).unwrap_or(u32::MAX),
                bytes: index.bytes(),
            };
            Update::Write(index.encode(), (placement, report))
        })
        .map_err(StoreError::Shared)?;
        for (slot, evicted_hash) in &placement.freed {
            // Releases the memory, unless another worker has already reused the slot.
            let key = self.slot_key(*slot);
            if let Ok(Some((bytes, cas))) = store.get(&key) {
                if Entry::peek_hash(&bytes) == Some(*evicted_hash) {
                    let _ = store.set(&key, b"", cas);
                }
            }
        }
        store
            .set(&self.slot_key(placement.slot), &encoded, 0)
            .map_err(|_| StoreError::Shared(CasError::Host("slot write failed".to_string())))?;
        Ok(report)
    }

    /// The stored entry for `key`, if any (whatever its age).
    pub fn lookup<S: SharedStore + ?Sized>(&self, store: &S, key: &CacheKey) -> Option<Entry> {
        let (index_bytes, _) = store.get(&self.index_key).ok()??;
        let indexed = *Index::decode(&index_bytes)?.find(key.hash)?;
        let (entry_bytes, _) = store.get(&self.slot_key(indexed.slot)).ok()??;
        let entry = Entry::decode(&entry_bytes)?;
        // The slot may have been reused or rewritten by a racing store, or two keys may share a
        // hash: trust it only if it is the very store the index records, for this exact key.
        (entry.stored_ms == indexed.stored_ms && entry.key == key.text).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FallbackConfig;
    use breakwater_common::shared::MemoryStore;
    use breakwater_common::testing::test;

    fn stale(json: &str) -> StaleSource {
        let cfg = FallbackConfig::parse(
            format!(r#"{{"rules":[{{"name":"r","serve":[{{"stale":{json}}}]}}]}}"#).as_bytes(),
        )
        .unwrap();
        cfg.rules[0].stale().unwrap().clone()
    }

    fn entry(key: &CacheKey, stored_ms: u64, body_len: usize) -> Entry {
        Entry {
            key: key.text.clone(),
            hash: key.hash,
            stored_ms,
            upstream_keep_ms: None,
            status: 200,
            headers: vec![(b"content-type".to_vec(), b"application/json".to_vec())],
            body: vec![b'x'; body_len],
        }
    }

    fn key(path: &str) -> CacheKey {
        CacheKey::new("r", b"GET", b"shop.example", path.as_bytes(), &[])
    }

    fn limits(max_entries: u32, max_bytes: u64) -> CacheLimits {
        CacheLimits {
            max_entries,
            max_bytes,
            max_body_bytes: 1024,
            min_store_interval_ms: 0,
        }
    }

    #[test]
    fn cache_keys_cover_method_authority_path_query_and_vary() {
        let base = key("/a?x=1");
        assert_eq!(
            base,
            CacheKey::new("r", b"GET", b"SHOP.example", b"/a?x=1", &[]),
            "authority is case-insensitive"
        );
        for other in [
            key("/a?x=2"),
            key("/a"),
            CacheKey::new("r", b"HEAD", b"shop.example", b"/a?x=1", &[]),
            CacheKey::new("r", b"GET", b"other.example", b"/a?x=1", &[]),
            CacheKey::new("other", b"GET", b"shop.example", b"/a?x=1", &[]),
        ] {
            assert_ne!(base.text, other.text);
        }
        let en = CacheKey::new(
            "r",
            b"GET",
            b"h",
            b"/",
            &[("accept-language", Some(b"en".to_vec()))],
        );
        let nb = CacheKey::new(
            "r",
            b"GET",
            b"h",
            b"/",
            &[("accept-language", Some(b"nb".to_vec()))],
        );
        let empty = CacheKey::new(
            "r",
            b"GET",
            b"h",
            b"/",
            &[("accept-language", Some(Vec::new()))],
        );
        let absent = CacheKey::new("r", b"GET", b"h", b"/", &[("accept-language", None)]);
        assert!(en != nb && empty != absent && en != absent);
    }

    #[test]
    fn cache_control_parsing() {
        let d = parse_cache_control(b"public, max-age=60, stale-if-error=\"300\"");
        assert_eq!(
            d,
            Directives {
                no_store: false,
                private: false,
                revalidate: false,
                max_age_s: Some(60),
                stale_if_error_s: Some(300)
            }
        );
        assert!(parse_cache_control(b"No-Store").no_store);
        assert!(parse_cache_control(b"private=\"set-cookie\", max-age=5").private);
        assert_eq!(
            parse_cache_control(b"stale-if-error=abc").stale_if_error_s,
            None
        );
        assert_eq!(parse_cache_control(b"").max_age_s, None);
        assert_eq!(parse_cache_control(b",,=,max-age").max_age_s, None);
    }

    #[test]
    fn storability_rules() {
        let s = stale(r#"{"max_age":"10m"}"#);
        assert_eq!(storable_request(b"GET", false, &s), Ok(()));
        assert_eq!(storable_request(b"HEAD", false, &s), Ok(()));
        assert_eq!(storable_request(b"POST", false, &s), Err(Skip::Method));
        assert_eq!(storable_request(b"GET", true, &s), Err(Skip::Credentials));
        let check = |status, cache_control: &[u8], cookie, vary: Option<&[u8]>, s: &StaleSource| {
            storable_response(status, parse_cache_control(cache_control), cookie, vary, s)
        };
        assert_eq!(check(200, b"", false, None, &s), Ok(()));
        assert_eq!(check(201, b"", false, None, &s), Err(Skip::Status));
        assert_eq!(check(503, b"", false, None, &s), Err(Skip::Status));
        assert_eq!(check(200, b"no-store", false, None, &s), Err(Skip::NoStore));
        assert_eq!(check(200, b"private", false, None, &s), Err(Skip::Private));
        for revalidate in [
            &b"no-cache"[..],
            b"must-revalidate",
            b"max-age=5, proxy-revalidate",
        ] {
            assert_eq!(
                check(200, revalidate, false, None, &s),
                Err(Skip::Revalidate)
            );
        }
        assert_eq!(
            check(200, b"must-revalidate, stale-if-error=60", false, None, &s),
            Ok(())
        );
        assert_eq!(check(200, b"", true, None, &s), Err(Skip::SetCookie));
        let opted_in =
            stale(r#"{"max_age":"10m","allow_credentials":true,"statuses":["200-205"]}"#);
        assert_eq!(storable_request(b"GET", true, &opted_in), Ok(()));
        assert_eq!(check(201, b"", true, None, &opted_in), Ok(()));
    }

    #[test]
    fn only_responses_varying_on_keyed_headers_are_kept() {
        let plain = stale(r#"{"max_age":"10m"}"#);
        let keyed = stale(r#"{"max_age":"10m","vary":["Accept-Encoding","accept-language"]}"#);
        let check = |vary: &[u8], s: &StaleSource| {
            storable_response(200, Directives::default(), false, Some(vary), s)
        };
        assert_eq!(check(b"", &plain), Ok(()));
        assert_eq!(check(b"accept-encoding", &plain), Err(Skip::Vary));
        assert_eq!(check(b"Accept-Encoding", &keyed), Ok(()));
        assert_eq!(check(b"accept-encoding, Accept-Language", &keyed), Ok(()));
        assert_eq!(
            check(b"accept-encoding, user-agent", &keyed),
            Err(Skip::Vary)
        );
        assert_eq!(check(b"*", &keyed), Err(Skip::Vary));
    }

    #[test]
    fn stale_if_error_replaces_the_rules_max_age() {
        assert_eq!(upstream_keep_ms(Directives::default()), None);
        assert_eq!(upstream_keep_ms(parse_cache_control(b"max-age=60")), None);
        assert_eq!(
            upstream_keep_ms(parse_cache_control(b"stale-if-error=30")),
            Some(30_000)
        );
        assert_eq!(
            upstream_keep_ms(parse_cache_control(b"max-age=60, stale-if-error=30")),
            Some(90_000)
        );
        assert_eq!(
            upstream_keep_ms(parse_cache_control(b"stale-if-error=18446744073709551615")),
            Some(u64::MAX)
        );
        let mut e = entry(&key("/a"), 1000, 1);
        assert_eq!(
            e.age_if_servable(61_000, 60_000),
            Some(60_000),
            "the rule's max_age, read now"
        );
        assert_eq!(e.age_if_servable(61_001, 60_000), None);
        e.upstream_keep_ms = Some(90_000);
        assert_eq!(
            e.age_if_servable(61_001, 60_000),
            Some(60_001),
            "the upstream's say wins"
        );
    }

    #[test]
    fn kept_headers() {
        for kept in [&b"content-type"[..], b"cache-control", b"etag", b"x-custom"] {
            assert!(keep_header(kept), "{kept:?}");
        }
        for dropped in [
            &b":status"[..],
            b"Set-Cookie",
            b"content-length",
            b"date",
            b"x-envoy-upstream-service-time",
            b"transfer-encoding",
            b"age",
        ] {
            assert!(!keep_header(dropped), "{dropped:?}");
        }
    }

    #[test]
    fn entries_roundtrip_and_refuse_corruption() {
        let e = entry(&key("/a"), 5, 10);
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes), Some(e.clone()));
        for len in 0..bytes.len() {
            assert_eq!(Entry::decode(&bytes[..len]), None);
        }
        assert_eq!(e.age_if_servable(5 + 60_000, 60_000), Some(60_000));
        assert_eq!(e.age_if_servable(5 + 60_001, 60_000), None);
        assert_eq!(
            e.age_if_servable(0, 60_000),
            Some(0),
            "a clock behind the store time is age 0"
        );
        assert_eq!(Entry::peek_hash(&bytes), Some(e.hash));
    }

    #[test]
    fn evicts_the_oldest_when_entries_run_out() {
        let l = limits(3, 1_000_000);
        let mut index = Index::default();
        for (i, h) in [10u64, 11, 12].iter().enumerate() {
            assert_eq!(
                index.place(*h, 100, i as u64, &l),
                Placement {
                    slot: i as u32,
                    evicted: 0,
                    freed: vec![]
                }
            );
        }
        // A fourth key evicts the oldest (hash 10, slot 0) and reuses its slot.
        assert_eq!(
            index.place(13, 100, 10, &l),
            Placement {
                slot: 0,
                evicted: 1,
                freed: vec![]
            }
        );
        assert!(index.find(10).is_none());
        // Storing an existing key refreshes it in place.
        assert_eq!(index.place(11, 150, 20, &l).slot, 1);
        assert_eq!(index.entries.len(), 3);
        assert_eq!(
            index.find(11).map(|e| (e.size, e.stored_ms)),
            Some((150, 20))
        );
    }

    #[test]
    fn evicts_the_oldest_until_the_bytes_fit() {
        let l = limits(100, 1000);
        let mut index = Index::default();
        index.place(1, 400, 1, &l);
        index.place(2, 400, 2, &l);
        let p = index.place(3, 700, 3, &l);
        assert_eq!(
            p.evicted, 2,
            "both older entries go to make room for 700 bytes"
        );
        assert_eq!((p.slot, p.freed), (2, vec![(0, 1), (1, 2)]));
        assert_eq!(index.bytes(), 700);
        assert!(index.bytes() <= l.max_bytes);
    }

    #[test]
    fn an_entry_larger_than_the_cache_is_refused() {
        let store = MemoryStore::new();
        let cache = Cache::new("p", limits(10, 2000));
        let a = key("/a");
        assert_eq!(
            cache.store(&store, &entry(&a, 1, 3000)),
            Err(StoreError::TooLarge)
        );
        assert!(store.keys().is_empty());
    }

    #[test]
    fn bounds_hold_under_many_keys() {
        let l = limits(50, 20_000);
        let store = MemoryStore::new();
        let cache = Cache::new("p", l);
        for i in 0..1000u64 {
            let k = key(&format!("/item/{i}"));
            let report = cache
                .store(&store, &entry(&k, i, (i % 7) as usize * 100))
                .unwrap();
            assert!(report.entries <= 50 && report.bytes <= 20_000, "{report:?}");
        }
        // Shared-data keys: the index plus at most max_entries slots, whatever was stored.
        assert!(store.keys().len() <= 51, "{}", store.keys().len());
        let index = Index::decode(&store.raw("breakwater.fallback/p/index").unwrap()).unwrap();
        assert!(
            index.entries.len() <= 50 && index.entries.len() >= 40,
            "{}",
            index.entries.len()
        );
        // The newest entries are the ones kept.
        let newest = key("/item/999");
        assert_eq!(
            cache.lookup(&store, &newest).map(|e| e.stored_ms),
            Some(999)
        );
        assert!(cache.lookup(&store, &key("/item/0")).is_none());
    }

    #[test]
    fn lookup_verifies_the_full_key() {
        let store = MemoryStore::new();
        let cache = Cache::new("p", limits(10, 100_000));
        let a = key("/a");
        cache.store(&store, &entry(&a, 1, 3)).unwrap();
        assert_eq!(cache.lookup(&store, &a).map(|e| e.body.len()), Some(3));
        // A different key that claims the same hash is not served a's response.
        let forged = CacheKey {
            text: b"r\nGET\nshop.example\n/evil\n".to_vec(),
            hash: a.hash,
        };
        assert!(cache.lookup(&store, &forged).is_none());
        assert!(cache.lookup(&store, &key("/b")).is_none());
    }

    #[test]
    fn plugins_have_separate_caches() {
        let store = MemoryStore::new();
        let a = key("/a");
        Cache::new("one", limits(10, 100_000))
            .store(&store, &entry(&a, 1, 3))
            .unwrap();
        assert!(Cache::new("two", limits(10, 100_000))
            .lookup(&store, &a)
            .is_none());
    }
}
