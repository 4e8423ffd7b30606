//! Suites: a named source of whatever a family of cases runs against — a backend factory,
//! a backend factory pointed at fault servers, or a raw HTTP API target — and which cases
//! apply to it.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cachekit_core::{Backend, Capabilities};

use crate::case::{
    Case, Need, SuiteKind, NO_HEADER_TIMEOUT_REASON, NO_IDLE_TIMEOUT_REASON, NO_TOKEN_REASON,
    NO_WRITE_TIMEOUT_REASON,
};
use crate::ctx::api::{ApiTarget, ConnectionTimeouts};
#[cfg(feature = "http-faults")]
use crate::ctx::faults::{FaultFactory, FaultTarget, TargetedFuture};

use crate::ctx::{BackendFuture, Factory};

/// A named backend factory: what the conformance matrix runs against.
///
/// The factory is called once per case, inside the runtime that case runs on, so it may
/// create clients bound to that runtime. It is also called once up front to read the
/// declared [`Capabilities`]. Backends that share one store across instances keep it
/// apart per case through the case's unique key prefix.
#[derive(Clone)]
pub struct Suite {
    name: String,
    factory: SuiteFactory,
}

#[derive(Clone)]
pub(crate) enum SuiteFactory {
    Backend(Arc<Factory>),
    #[cfg(feature = "http-faults")]
    HttpFaults(Arc<FaultFactory>),
    HttpApi(Result<Box<(ApiTarget, Capabilities)>, String>),
}

impl Suite {
    /// A suite called `name` whose backends come from `factory`.
    pub fn new<F, Fut, B>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = B> + 'static,
        B: Backend + 'static,
    {
        let factory = move || -> BackendFuture {
            let made = factory();
            Box::pin(async move { Arc::new(made.await) as Arc<dyn Backend> })
        };
        Suite {
            name: name.into(),
            factory: SuiteFactory::Backend(Arc::new(factory)),
        }
    }

    pub(crate) fn from_factory(name: impl Into<String>, factory: SuiteFactory) -> Self {
        Suite {
            name: name.into(),
            factory,
        }
    }

    pub(crate) fn factory(&self) -> &SuiteFactory {
        &self.factory
    }

    /// The kind of cases this suite runs.
    pub fn kind(&self) -> SuiteKind {
        match self.factory {
            SuiteFactory::Backend(_) => SuiteKind::Backend,
            #[cfg(feature = "http-faults")]
            SuiteFactory::HttpFaults(_) => SuiteKind::HttpFaults,
            SuiteFactory::HttpApi(_) => SuiteKind::HttpApi,
        }
    }

    /// Whether `case` belongs in this suite: backend cases in backend suites, fault cases
    /// in fault suites, API cases in API suites.
    pub fn includes(&self, case: &Case) -> bool {
        case.suite_kind() == self.kind()
    }

    /// Why `case` does not apply to this suite, whose backend declares `caps`, or `None` if
    /// it applies: the case's needs judged against the capabilities, plus the needs only
    /// the suite can answer (a configured token, declared connection timeouts).
    pub fn skip_reason(&self, case: &Case, caps: &Capabilities) -> Option<String> {
        case.skip_reason(caps).or_else(|| {
            let target = match &self.factory {
                SuiteFactory::HttpApi(Ok(api)) => Some(&api.0),
                _ => None,
            };
            let timeouts = target.map(|t| t.connection_timeouts).unwrap_or_default();
            let unmet = [
                (
                    Need::AuthToken,
                    target.is_some_and(|t| t.token.is_some()),
                    NO_TOKEN_REASON,
                ),
                (
                    Need::HeaderTimeout,
                    timeouts.header.is_some(),
                    NO_HEADER_TIMEOUT_REASON,
                ),
                (
                    Need::IdleTimeout,
                    timeouts.idle.is_some(),
                    NO_IDLE_TIMEOUT_REASON,
                ),
                (
                    Need::WriteTimeout,
                    timeouts.write.is_some(),
                    NO_WRITE_TIMEOUT_REASON,
                ),
            ];
            unmet
                .into_iter()
                .find(|(need, met, _)| case.needs.contains(need) && !met)
                .map(|(_, _, reason)| reason.to_owned())
        })
    }

    /// The suite's name, the first segment of every test name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Builds one backend on a throwaway runtime and reads what it declares.
    pub fn capabilities(&self) -> Result<Capabilities, String> {
        let factory = match &self.factory {
            SuiteFactory::Backend(factory) => factory.clone(),
            // Fault suites point the backend at servers the cases start; it declares nothing
            // the fault cases depend on.
            #[cfg(feature = "http-faults")]
            SuiteFactory::HttpFaults(_) => return Ok(Capabilities::new("http-faults")),
            SuiteFactory::HttpApi(Ok(api)) => return Ok(api.1.clone()),
            SuiteFactory::HttpApi(Err(reason)) => return Err(reason.clone()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("cannot build a tokio runtime: {err}"))?;
        catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(async { factory().await.capabilities() })
        }))
        .map_err(|panic| format!("the backend factory panicked: {}", panic_message(&*panic)))
    }
}

impl fmt::Debug for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite").field("name", &self.name).finish()
    }
}

impl Suite {
    /// A suite of raw HTTP API cases against the service at `base_url`, which claims the
    /// whole API (whole-second ttls up to the protocol's maximum). A base URL the cases
    /// cannot speak to (`https`, user-info) fails every case with the reason.
    pub fn http_api(name: impl Into<String>, base_url: &str, token: Option<String>) -> Self {
        Self::http_api_declaring(name, base_url, token, Capabilities::new("http-api"))
    }

    /// [`Suite::http_api`] for a service that declares less (no ttl, say): cases that
    /// need what it does not claim are skipped, as in a backend suite.
    pub fn http_api_declaring(
        name: impl Into<String>,
        base_url: &str,
        token: Option<String>,
        declared: Capabilities,
    ) -> Self {
        let target = ApiTarget::parse(base_url, token);
        Suite::from_factory(
            name,
            SuiteFactory::HttpApi(target.map(|t| Box::new((t, declared)))),
        )
    }

    /// This raw API suite, with the connection timeouts its service declares: the rules
    /// that need them ([`Need::HeaderTimeout`], [`Need::IdleTimeout`], [`Need::WriteTimeout`])
    /// then run instead of being skipped. A suite of another kind has no connections of its
    /// own to judge and is returned unchanged.
    pub fn declaring_connection_timeouts(mut self, timeouts: ConnectionTimeouts) -> Self {
        if let SuiteFactory::HttpApi(Ok(api)) = &mut self.factory {
            api.0.connection_timeouts = timeouts;
        }
        self
    }
}

#[cfg(feature = "http-faults")]
impl Suite {
    /// A suite of fault cases for a backend that speaks the cachekit HTTP API, built by
    /// `factory` for each [`FaultTarget`].
    pub fn http_faults<F, Fut, B>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(FaultTarget) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = B> + 'static,
        B: Backend + 'static,
    {
        let factory = move |target: FaultTarget| -> TargetedFuture {
            let made = factory(target);
            Box::pin(async move { Arc::new(made.await) as Arc<dyn Backend> })
        };
        Suite::from_factory(name, SuiteFactory::HttpFaults(Arc::new(factory)))
    }
}

/// The message of a caught panic, whatever its payload type.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
