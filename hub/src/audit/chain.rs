//! The hash chain of the audit log, without I/O.
//!
//! An entry's hash is SHA-256 over a domain tag, the previous entry's hash and the entry's
//! content, each field length-prefixed so that no two different entries encode alike:
//!
//! ```text
//! hash = SHA-256("bohai-audit-v1" || prev_hash || seq || at || actor || action || dataset
//!                || subject || keys || count || purpose || detail)
//! ```
//!
//! An entry that names the person behind the act (`person`) is hashed with the tag
//! `bohai-audit-v2` and the person, as text, right after `actor`; the two tags keep the two
//! forms apart, and entries written before persons were recorded keep their hashes.
//!
//! Integers are 8 bytes big-endian (`at` in microseconds since the Unix epoch, the precision
//! PostgreSQL keeps); text is its length (8 bytes) and its UTF-8 bytes; an absent optional
//! field is one byte 0, a present one byte 1 and the text; `keys` is the count and each key.

use chrono::{DateTime, Utc};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// What an audit entry records; `seq` and the hashes are added when it is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// When, truncated to microseconds.
    pub at: DateTime<Utc>,
    /// Who: a department code, or `operator` for the command line.
    pub actor: String,
    /// The person who acted for `actor` (the token's actor, or `--actor` at the command
    /// line), when known.
    pub person: Option<String>,
    /// What, e.g. `publish`, `read`, `subscription.request`, `token.create`, `licence.revoke`.
    pub action: String,
    /// The dataset concerned, if any.
    pub dataset: Option<String>,
    /// Another thing concerned: a subscription, token or licence id, a push request.
    pub subject: Option<String>,
    /// The record keys concerned (a read's primary keys).
    pub keys: Vec<String>,
    /// How many records (for a batch whose keys are not listed), or `keys.len()`.
    pub count: i64,
    /// The stated purpose, for reads and requests.
    pub purpose: Option<String>,
    /// More, as JSON text (hashed byte for byte).
    pub detail: String,
}

/// Microseconds since the epoch: the precision stored and hashed.
pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// `at` truncated to the microsecond, as PostgreSQL will give it back.
pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros(at)).unwrap_or(at)
}

fn put_text(ctx: &mut ring::digest::Context, s: &str) {
    let len = u64::try_from(s.len()).unwrap_or(u64::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(s.as_bytes());
}

fn put_opt(ctx: &mut ring::digest::Context, s: Option<&str>) {
    match s {
        None => ctx.update(&[0]),
        Some(s) => {
            ctx.update(&[1]);
            put_text(ctx, s);
        }
    }
}

/// The hash of entry `seq` with `content`, chained to `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: i64, content: &Content) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(match content.person {
        None => b"bohai-audit-v1",
        Some(_) => b"bohai-audit-v2",
    });
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&micros(content.at).to_be_bytes());
    put_text(&mut ctx, &content.actor);
    if let Some(person) = &content.person {
        put_text(&mut ctx, person);
    }
    put_text(&mut ctx, &content.action);
    put_opt(&mut ctx, content.dataset.as_deref());
    put_opt(&mut ctx, content.subject.as_deref());
    let n = u64::try_from(content.keys.len()).unwrap_or(u64::MAX);
    ctx.update(&n.to_be_bytes());
    for k in &content.keys {
        put_text(&mut ctx, k);
    }
    ctx.update(&content.count.to_be_bytes());
    put_opt(&mut ctx, content.purpose.as_deref());
    put_text(&mut ctx, &content.detail);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Position in the log, from 1.
    pub seq: i64,
    /// What it records.
    pub content: Content,
    /// The hash of the entry before it, as stored.
    pub prev_hash: Vec<u8>,
    /// Its own hash, as stored.
    pub hash: Vec<u8>,
}

/// Why an entry breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The sequence skips or repeats (an entry was deleted or inserted).
    #[error("entry {found} follows entry {previous}: entries are missing")]
    Gap {
        /// The sequence number before.
        previous: i64,
        /// The sequence number found.
        found: i64,
    },
    /// `prev_hash` is not the previous entry's hash.
    #[error("entry {0}: its prev_hash is not the hash of the entry before it")]
    Link(i64),
    /// The content does not hash to the stored hash: the entry was changed.
    #[error("entry {0}: its content does not match its hash (the entry was changed)")]
    Content(i64),
    /// The log ends before the last entry a signed checkpoint covers: entries were deleted.
    #[error("the log ends at entry {ends}, but a signed checkpoint covers {signed} entries: entries {first} to {signed} were deleted", first = ends + 1)]
    Truncated {
        /// The last entry found.
        ends: i64,
        /// The last entry the checkpoint signed.
        signed: i64,
    },
    /// The entries up to a signed checkpoint hash to another value: they were rewritten
    /// (the chain was recomputed after a change, so no single entry breaks it).
    #[error("entries 1 to {0} do not hash to the signed checkpoint: the log was rewritten before entry {0}")]
    Rewritten(i64),
}

impl Break {
    /// The entry where the chain breaks.
    pub fn seq(&self) -> i64 {
        match self {
            Break::Gap { found, .. } => *found,
            Break::Link(s) | Break::Content(s) | Break::Rewritten(s) => *s,
            Break::Truncated { ends, .. } => *ends + 1,
        }
    }
}

/// Checks entries in order, continuing from the entry `previous` (sequence number and hash;
/// `(0, GENESIS)` at the start). Returns the last sequence number and hash, or the first break.
pub fn verify<'a>(
    previous: (i64, [u8; 32]),
    entries: impl IntoIterator<Item = &'a Stored>,
) -> Result<(i64, [u8; 32]), Break> {
    let (mut last_seq, mut last_hash) = previous;
    for e in entries {
        if e.seq != last_seq + 1 {
            return Err(Break::Gap {
                previous: last_seq,
                found: e.seq,
            });
        }
        if e.prev_hash.as_slice() != last_hash.as_slice() {
            return Err(Break::Link(e.seq));
        }
        let computed = entry_hash(&last_hash, e.seq, &e.content);
        if e.hash.as_slice() != computed.as_slice() {
            return Err(Break::Content(e.seq));
        }
        last_seq = e.seq;
        last_hash = computed;
    }
    Ok((last_seq, last_hash))
}

/// Checks a chain already verified up to `reached` (the last entry and its hash; `None` when
/// the log ended before the checkpoint) against a signed checkpoint of entry `signed_seq`
/// with `signed_hash`.
pub fn against_checkpoint(
    signed_seq: i64,
    signed_hash: &[u8; 32],
    reached: (i64, [u8; 32]),
) -> Result<(), Break> {
    let (seq, hash) = reached;
    if seq < signed_seq {
        Err(Break::Truncated {
            ends: seq,
            signed: signed_seq,
        })
    } else if seq == signed_seq && &hash == signed_hash {
        Ok(())
    } else {
        Err(Break::Rewritten(signed_seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(actor: &str, keys: &[&str]) -> Content {
        Content {
            at: truncate(Utc::now()),
            actor: actor.to_owned(),
            person: None,
            action: "read".to_owned(),
            dataset: Some("business-registrations".to_owned()),
            subject: None,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            count: i64::try_from(keys.len()).unwrap_or_default(),
            purpose: Some("licensing checks".to_owned()),
            detail: "{}".to_owned(),
        }
    }

    fn chain(contents: Vec<Content>) -> Vec<Stored> {
        let mut prev = GENESIS;
        let mut out = Vec::new();
        for (i, c) in contents.into_iter().enumerate() {
            let seq = i64::try_from(i).unwrap_or_default() + 1;
            let hash = entry_hash(&prev, seq, &c);
            out.push(Stored {
                seq,
                content: c,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
            });
            prev = hash;
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain(vec![
            content("civil-affairs", &["a"]),
            content("public-security", &["b", "c"]),
            content("finance", &[]),
        ]);
        let (last, hash) = verify((0, GENESIS), &entries).unwrap();
        assert_eq!(last, 3);
        assert_eq!(hash.as_slice(), entries[2].hash.as_slice());
        // Continuing from a checkpoint gives the same answer.
        let mut at_one = [0u8; 32];
        at_one.copy_from_slice(&entries[0].hash);
        assert_eq!(verify((1, at_one), &entries[1..]), Ok((3, hash)));
    }

    #[test]
    fn a_changed_entry_is_named() {
        let mut entries = chain(vec![
            content("civil-affairs", &["a"]),
            content("public-security", &["b"]),
            content("finance", &["c"]),
        ]);
        entries[1].content.purpose = Some("something else".to_owned());
        assert_eq!(verify((0, GENESIS), &entries), Err(Break::Content(2)));
    }

    #[test]
    fn a_rehashed_entry_breaks_the_next_link() {
        let mut entries = chain(vec![
            content("civil-affairs", &["a"]),
            content("public-security", &["b"]),
            content("finance", &["c"]),
        ]);
        entries[1].content.keys.clear();
        entries[1].hash = entry_hash(&GENESIS, 2, &entries[1].content).to_vec();
        // Entry 2 no longer links to entry 1, whichever prev_hash it claims.
        assert_eq!(verify((0, GENESIS), &entries), Err(Break::Content(2)));
        let prev: [u8; 32] = entries[0].hash.clone().try_into().unwrap_or(GENESIS);
        entries[1].hash = entry_hash(&prev, 2, &entries[1].content).to_vec();
        assert_eq!(verify((0, GENESIS), &entries), Err(Break::Link(3)));
    }

    #[test]
    fn a_deleted_entry_is_a_gap() {
        let mut entries = chain(vec![
            content("a", &[]),
            content("b", &[]),
            content("c", &[]),
        ]);
        entries.remove(1);
        assert_eq!(verify((0, GENESIS), &entries).map_err(|b| b.seq()), Err(3));
    }

    #[test]
    fn fields_do_not_run_into_each_other() {
        let mut a = content("ab", &["c"]);
        let mut b = content("a", &["bc"]);
        a.at = b.at;
        b.detail = a.detail.clone();
        assert_ne!(entry_hash(&GENESIS, 1, &a), entry_hash(&GENESIS, 1, &b));
        let mut none = content("x", &[]);
        none.subject = None;
        let mut empty = none.clone();
        empty.subject = Some(String::new());
        assert_ne!(
            entry_hash(&GENESIS, 1, &none),
            entry_hash(&GENESIS, 1, &empty)
        );
        // A person is hashed, and never runs into the actor.
        let mut with = content("ab", &[]);
        with.person = Some("c".to_owned());
        let mut other = with.clone();
        other.actor = "a".to_owned();
        other.person = Some("bc".to_owned());
        assert_ne!(
            entry_hash(&GENESIS, 1, &with),
            entry_hash(&GENESIS, 1, &other)
        );
        let mut without = with.clone();
        without.person = None;
        assert_ne!(
            entry_hash(&GENESIS, 1, &with),
            entry_hash(&GENESIS, 1, &without)
        );
    }

    #[test]
    fn a_checkpoint_finds_truncation_and_rewrite() {
        let entries = chain(vec![
            content("a", &[]),
            content("b", &[]),
            content("c", &[]),
        ]);
        let at2: [u8; 32] = entries[1].hash.clone().try_into().unwrap_or(GENESIS);
        assert_eq!(against_checkpoint(2, &at2, (2, at2)), Ok(()));
        assert_eq!(
            against_checkpoint(2, &at2, (1, GENESIS)),
            Err(Break::Truncated { ends: 1, signed: 2 })
        );
        assert_eq!(
            against_checkpoint(2, &at2, (2, [7; 32])),
            Err(Break::Rewritten(2))
        );
        assert_eq!(against_checkpoint(0, &GENESIS, (0, GENESIS)), Ok(()));
    }
}
