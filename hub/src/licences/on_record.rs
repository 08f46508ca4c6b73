//! What the hub issued, as online verification compares it: the SHA-256 of each issued
//! licence version's claims, learnt from the store and kept in memory. A version's document
//! never changes once issued, so what was learnt stays true; only versions found are kept
//! (one not issued yet may be issued a moment later, by another process).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bohai_certs::licence::LicenceClaims;

/// A licence version: its number and version.
pub type VersionKey = (String, i32);

/// The SHA-256 of a licence's claims as the hub serializes them: two claims are the same
/// exactly when their digests are.
pub fn claims_digest(claims: &LicenceClaims) -> [u8; 32] {
    let bytes = serde_json::to_vec(claims).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Digests of issued versions' claims, at most about [`CAPACITY`] of them: the recently used
/// ones are kept (two generations; a hit in the older one moves it to the newer one, and the
/// older one is dropped when the newer one is full).
#[derive(Debug, Default)]
pub struct IssuedClaims {
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<VersionKey, [u8; 32]>,
    previous: HashMap<VersionKey, [u8; 32]>,
}

/// Most versions remembered (about 30 MB at that).
pub const CAPACITY: usize = 262_144;

impl IssuedClaims {
    /// The digest of the issued claims of `key`, if learnt.
    pub fn get(&self, key: &VersionKey) -> Option<[u8; 32]> {
        let mut g = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = g.current.get(key) {
            return Some(*d);
        }
        let d = g.previous.remove(key)?;
        g.insert(key.clone(), d);
        Some(d)
    }

    /// Learns the digest of the issued claims of `key`.
    pub fn learn(&self, key: VersionKey, digest: [u8; 32]) {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, digest);
    }
}

impl Generations {
    fn insert(&mut self, key: VersionKey, digest: [u8; 32]) {
        if self.current.len() >= CAPACITY / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recently_used_versions_are_kept_within_the_capacity() {
        let cache = IssuedClaims::default();
        let key = |i: usize| (format!("DL-2026-{i:08}"), 1);
        cache.learn(key(0), [7; 32]);
        for i in 1..CAPACITY {
            cache.learn(key(i), [1; 32]);
            if i % 1000 == 0 {
                // Used now and then: kept.
                assert_eq!(cache.get(&key(0)), Some([7; 32]));
            }
        }
        assert_eq!(cache.get(&key(0)), Some([7; 32]));
        let g = cache.generations.lock().unwrap();
        assert!(g.current.len() + g.previous.len() <= CAPACITY);
        drop(g);
        // Never used again since it was learnt, and two generations ago: forgotten.
        assert_eq!(cache.get(&key(1)), None);
    }
}
