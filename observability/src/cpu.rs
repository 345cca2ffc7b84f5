//! CPU time spent by a task in its own synchronous sections.
//!
//! An async task's wall time mixes its own work with waiting (API round trips, timers, locks), and the
//! task may move between worker threads at every `.await`. [`cpu_timed`] reads the calling thread's CPU
//! clock around each `poll` of the wrapped future and sums the differences, so it counts exactly the
//! work done while the future was running, on whichever thread, and none of the waiting.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

/// CPU time the calling thread has consumed so far, or `None` where the clock is not available.
pub fn thread_cpu_time() -> Option<Duration> {
    thread_clock()
}

#[cfg(unix)]
fn thread_clock() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes one timespec into `now`, which is valid and exclusively
    // borrowed for the call; CLOCK_THREAD_CPUTIME_ID needs no other argument.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    if failed {
        return None;
    }
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    Some(Duration::new(seconds, nanos))
}

#[cfg(not(unix))]
fn thread_clock() -> Option<Duration> {
    None
}

/// Wraps `future` so that it resolves to its output and the CPU time spent polling it.
pub fn cpu_timed<F: Future>(future: F) -> CpuTimed<F> {
    CpuTimed {
        inner: Box::pin(future),
        spent: Duration::ZERO,
    }
}

/// The future returned by [`cpu_timed`].
pub struct CpuTimed<F> {
    // Boxed so that `CpuTimed` is `Unpin` without unsafe pin projection; one allocation per task.
    inner: Pin<Box<F>>,
    spent: Duration,
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = (F::Output, Duration);

    // Never inlined, so that a profiler can attribute exactly the timed work to this frame
    // (`valgrind --tool=callgrind --toggle-collect='*CpuTimed*poll*'`, docs/PERFORMANCE.md): inlined
    // into the generic runtime's reconcile, the frame vanished and the toggle collected nothing.
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let before = thread_cpu_time();
        let polled = this.inner.as_mut().poll(cx);
        if let (Some(before), Some(after)) = (before, thread_cpu_time()) {
            this.spent += after.saturating_sub(before);
        }
        polled.map(|output| (output, this.spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until the thread has used `amount` more CPU time.
    fn burn(amount: Duration) {
        let Some(start) = thread_cpu_time() else {
            return;
        };
        let mut x = 0u64;
        while thread_cpu_time().is_some_and(|now| now - start < amount) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn the_thread_clock_advances_with_work() {
        let before = thread_cpu_time().expect("a thread CPU clock on this platform");
        burn(Duration::from_millis(5));
        let after = thread_cpu_time().expect("a thread CPU clock on this platform");
        assert!(after - before >= Duration::from_millis(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_the_work_in_polls_and_not_the_waiting() {
        let ((), spent) = cpu_timed(async {
            burn(Duration::from_millis(20));
            tokio::time::sleep(Duration::from_millis(300)).await;
            burn(Duration::from_millis(20));
        })
        .await;
        assert!(spent >= Duration::from_millis(40), "{spent:?}");
        // The 300 ms sleep is waiting, not CPU: only the two bursts (and a little polling) count.
        assert!(spent < Duration::from_millis(200), "{spent:?}");
    }
}
