//! An expensive answer kept for a short time and made by one request at a time: the
//! operations overview behind `/metrics` and `/api/v1/ops/overview` asks the broker for every
//! partition's watermarks and the database for every feed; a scraper, a dashboard and a
//! curious client at once must not multiply that work.

use std::future::Future;
use std::time::{Duration, Instant};

/// The last answer and when it was made.
#[derive(Debug)]
pub struct Recent<T> {
    slot: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self {
            slot: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> Recent<T> {
    /// The answer made less than `fresh_for` ago, or a new one from `make` (the requests that
    /// arrive meanwhile wait for it rather than make their own). A failure is not kept.
    pub async fn get_or_make<E, F, Fut>(&self, fresh_for: Duration, make: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((made, answer)) = slot.as_ref() {
            if made.elapsed() < fresh_for {
                return Ok(answer.clone());
            }
        }
        let answer = make().await?;
        *slot = Some((Instant::now(), answer.clone()));
        Ok(answer)
    }

    /// Forgets the answer: the next request makes a new one.
    pub async fn forget(&self) {
        *self.slot.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_requests_share_one_answer_until_it_is_old() {
        let recent = Arc::new(Recent::<usize>::default());
        let made = Arc::new(AtomicUsize::new(0));
        let ask = || {
            let (recent, made) = (Arc::clone(&recent), Arc::clone(&made));
            async move {
                recent
                    .get_or_make(Duration::from_secs(60), || async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(made.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await
            }
        };
        let mut asking = tokio::task::JoinSet::new();
        for _ in 0..8 {
            asking.spawn(ask());
        }
        let answers: Vec<Result<usize, ()>> = asking.join_all().await;
        assert!(answers.iter().all(|a| *a == Ok(1)), "{answers:?}");
        assert_eq!(made.load(Ordering::SeqCst), 1);
        recent.forget().await;
        assert_eq!(ask().await, Ok(2));
        // Nothing is kept with no time to keep it.
        let fresh = recent
            .get_or_make(Duration::ZERO, || async { Ok::<_, ()>(9) })
            .await;
        assert_eq!(fresh, Ok(9));
    }
}
