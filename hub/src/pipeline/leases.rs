//! One holder at a time per stream: a retried HTTP push with the same Idempotency-Key waits
//! for its earlier attempt, including the records that attempt left with the broker, instead
//! of sending the same records beside it.
//!
//! A lease is this process's: hubs that serve pushes side by side each keep their own (see
//! docs/operations.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

/// The streams leased in this process.
#[derive(Debug, Default)]
pub struct StreamLeases {
    streams: Mutex<Streams>,
}

#[derive(Debug, Default)]
struct Streams {
    by_name: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    /// The map's size after its last sweep of streams no one holds.
    swept_at: usize,
}

/// The lease of one stream, held until every clone of it is dropped: by the request, and by
/// each batch of the request the broker has not answered for yet.
#[derive(Debug, Clone)]
pub struct StreamLease(#[allow(dead_code)] Arc<OwnedMutexGuard<()>>);

impl StreamLeases {
    /// The lease of `stream`, waiting up to `wait` for its holder to let it go; `None` if it
    /// is still held then.
    pub async fn acquire(&self, stream: &str, wait: Duration) -> Option<StreamLease> {
        let lock = {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            let Streams { by_name, swept_at } = &mut *streams;
            if by_name.len() > 2 * (*swept_at).max(64) {
                by_name.retain(|_, lock| lock.strong_count() > 0);
                *swept_at = by_name.len();
            }
            match by_name.get(stream).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    by_name.insert(stream.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        tokio::time::timeout(wait, lock.lock_owned())
            .await
            .ok()
            .map(|guard| StreamLease(Arc::new(guard)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_has_one_holder_until_every_clone_is_dropped() {
        let leases = StreamLeases::default();
        let first = leases.acquire("s", Duration::ZERO).await.unwrap();
        let kept = first.clone();
        drop(first);
        assert!(leases
            .acquire("s", Duration::from_millis(10))
            .await
            .is_none());
        assert!(leases.acquire("other", Duration::ZERO).await.is_some());
        drop(kept);
        assert!(leases.acquire("s", Duration::ZERO).await.is_some());
    }

    #[tokio::test]
    async fn streams_no_one_holds_are_forgotten() {
        let leases = StreamLeases::default();
        for i in 0..1000 {
            drop(leases.acquire(&i.to_string(), Duration::ZERO).await);
        }
        let remembered = leases.streams.lock().unwrap().by_name.len();
        assert!(remembered <= 129, "{remembered}");
    }
}
