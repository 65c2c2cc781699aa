//! Image pulls, one at a time per image: services that share an image and start together wait
//! on one pull and share its result. Each pull's progress (layers and bytes) is kept for
//! `/proxy/status` while it runs, and every pull is counted for `/proxy/metrics`. What a pull
//! does is passed in, so the single flight is tested without Docker.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::docker::PullFigures;

/// One pull under way.
#[derive(Default)]
struct Flight {
    progress: Mutex<PullFigures>,
    /// Callers waiting on it.
    waiters: AtomicU64,
    result: Mutex<Option<Result<(), String>>>,
    done: Condvar,
}

/// Pulls under way, by image, and the count of those that ended.
#[derive(Default)]
pub(crate) struct Pulls {
    flying: Mutex<HashMap<String, Arc<Flight>>>,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Total seconds spent pulling, in milliseconds.
    millis: AtomicU64,
}

/// How pulls went, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PullCounts {
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
}

impl Pulls {
    /// The pulls of this process: one set, kept across reloads, so that a pull under way is
    /// shared with the services of the next generation and the counts go on.
    pub(crate) fn shared() -> Arc<Pulls> {
        static PULLS: std::sync::OnceLock<Arc<Pulls>> = std::sync::OnceLock::new();
        PULLS.get_or_init(Arc::default).clone()
    }

    /// Pulls `image` with `run`, which reports progress through the function it is given;
    /// while a pull of the same image is under way, waits for that one and returns its
    /// result instead (it was asked for the same thing).
    pub(crate) fn pull(
        &self,
        image: &str,
        run: impl FnOnce(&dyn Fn(PullFigures)) -> Result<(), String>,
    ) -> Result<(), String> {
        let (flight, mine) = {
            let mut flying = self.flying.lock();
            match flying.get(image) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    flying.insert(image.to_string(), f.clone());
                    (f, true)
                }
            }
        };
        if !mine {
            flight.waiters.fetch_add(1, Relaxed);
            let mut result = flight.result.lock();
            while result.is_none() {
                flight.done.wait(&mut result);
            }
            return result.clone().unwrap_or(Ok(()));
        }
        let started = Instant::now();
        let result = run(&|figures| *flight.progress.lock() = figures);
        self.count(&result, started.elapsed());
        *flight.result.lock() = Some(result.clone());
        self.flying.lock().remove(image);
        flight.done.notify_all();
        result
    }

    fn count(&self, result: &Result<(), String>, took: Duration) {
        match result {
            Ok(()) => self.ok.fetch_add(1, Relaxed),
            Err(_) => self.failed.fetch_add(1, Relaxed),
        };
        self.millis
            .fetch_add(u64::try_from(took.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The progress of the pull of `image`, while one is under way.
    pub(crate) fn progress(&self, image: &str) -> Option<PullFigures> {
        let f = self.flying.lock().get(image).cloned()?;
        let p = *f.progress.lock();
        Some(p)
    }

    /// Callers waiting on the pull of `image`.
    #[cfg(test)]
    fn waiters(&self, image: &str) -> u64 {
        let f = self.flying.lock().get(image).cloned();
        f.map_or(0, |f| f.waiters.load(Relaxed))
    }

    pub(crate) fn counts(&self) -> PullCounts {
        PullCounts {
            ok: self.ok.load(Relaxed),
            failed: self.failed.load(Relaxed),
            seconds: self.millis.load(Relaxed) as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn concurrent_pulls_of_one_image_share_one_flight() {
        let pulls = Arc::new(Pulls::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Barrier::new(2));
        // The first pull holds until the others have had time to join it.
        let first = {
            let (pulls, runs, gate) = (pulls.clone(), runs.clone(), gate.clone());
            std::thread::spawn(move || {
                pulls.pull("app:1", |report| {
                    runs.fetch_add(1, Relaxed);
                    report(PullFigures {
                        layers_done: 1,
                        layers_total: 2,
                        bytes_done: 10,
                        bytes_total: 20,
                    });
                    gate.wait();
                    gate.wait();
                    Err("unauthorized: nope".into())
                })
            })
        };
        gate.wait();
        assert_eq!(pulls.progress("app:1").map(|p| p.layers_done), Some(1));
        let others: Vec<_> = (0..5)
            .map(|_| {
                let (pulls, runs) = (pulls.clone(), runs.clone());
                std::thread::spawn(move || {
                    pulls.pull("app:1", |_| {
                        runs.fetch_add(1, Relaxed);
                        Ok(())
                    })
                })
            })
            .collect();
        // The flight lands once all five wait on it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pulls.waiters("app:1") < 5 {
            assert!(
                Instant::now() < deadline,
                "the waiters never joined the pull"
            );
            std::thread::yield_now();
        }
        gate.wait();
        assert_eq!(first.join().unwrap(), Err("unauthorized: nope".into()));
        for o in others {
            assert_eq!(o.join().unwrap(), Err("unauthorized: nope".into()));
        }
        assert_eq!(runs.load(Relaxed), 1, "one pull for six callers");
        assert_eq!(pulls.progress("app:1"), None, "no pull under way any more");
        assert_eq!(pulls.counts().failed, 1);
    }

    #[test]
    fn different_images_fly_apart() {
        let pulls = Pulls::default();
        assert_eq!(pulls.pull("a", |_| Ok(())), Ok(()));
        assert_eq!(
            pulls.pull("b", |_| Err("not found".into())),
            Err("not found".into())
        );
        assert_eq!(pulls.counts().ok, 1);
        assert_eq!(pulls.counts().failed, 1);
    }
}
