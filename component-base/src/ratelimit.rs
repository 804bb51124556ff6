//! A client-side rate limit in front of every API request: a token bucket of `burst` tokens
//! refilled at `qps` per second, as client-go's default `flowcontrol` limiter. A request waits
//! for a token in `poll_ready`, so callers queue instead of failing.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tower::{Layer, Service};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// The [`Layer`] that adds a [`RateLimit`] to a service.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<Arc<Limiter>>,
}

impl RateLimitLayer {
    /// `qps` tokens per second (fractions allowed), at most `burst` at once (at least 1).
    /// A `qps` of 0 or less means no limit.
    pub fn new(qps: f32, burst: u32) -> Self {
        if qps.is_nan() || qps <= 0.0 || !qps.is_finite() {
            return RateLimitLayer { limiter: None };
        }
        let period = std::time::Duration::from_secs_f64(1.0 / f64::from(qps));
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = Quota::with_period(period).map(|q| Arc::new(RateLimiter::direct(q.allow_burst(burst))));
        RateLimitLayer { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            waiting: None,
            permitted: false,
        }
    }
}

/// A service that takes a token before each request.
pub struct RateLimit<S> {
    inner: S,
    limiter: Option<Arc<Limiter>>,
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    permitted: bool,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.permitted
            && let Some(limiter) = &self.limiter
        {
            let waiting = self.waiting.get_or_insert_with(|| {
                let limiter = limiter.clone();
                Box::pin(async move { limiter.until_ready().await })
            });
            match waiting.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    self.waiting = None;
                    self.permitted = true;
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.permitted = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use tower::ServiceExt;

    fn noop() -> impl Service<(), Response = (), Error = std::convert::Infallible> {
        tower::service_fn(|()| async { Ok::<(), std::convert::Infallible>(()) })
    }

    #[tokio::test]
    async fn burst_passes_at_once_then_a_request_waits_for_a_token() {
        // One token a second, burst 5: five calls are ready at once, the sixth is not.
        let mut svc = RateLimitLayer::new(1.0, 5).layer(noop());
        for i in 0..5 {
            let ready = svc.ready().now_or_never();
            assert!(ready.is_some(), "call {i} within the burst had to wait");
            svc.call(()).await.unwrap();
        }
        assert!(
            svc.ready().now_or_never().is_none(),
            "the sixth call did not wait"
        );
    }

    #[tokio::test]
    async fn zero_qps_means_unlimited() {
        let mut svc = RateLimitLayer::new(0.0, 0).layer(noop());
        for _ in 0..1000 {
            assert!(svc.ready().now_or_never().is_some());
            svc.call(()).await.unwrap();
        }
    }
}
