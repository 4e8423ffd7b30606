//! `health_check` of a reachable backend.

use std::time::Duration;

use crate::failure::Operation;
use crate::{CaseResult, Ctx, Failure};

/// A reachable backend reports healthy.
pub async fn health_check_reports_healthy(ctx: Ctx) -> CaseResult {
    let report = ctx.backend.health_check().await;
    if report.healthy {
        return Ok(());
    }
    Err(Failure::new("health_check of a reachable backend")
        .operation(Operation::HealthCheck)
        .expected("healthy: true")
        .got(format!("healthy: false, details: {:?}", report.details)))
}

/// The health report names the declared backend type.
pub async fn health_check_names_the_backend_type(ctx: Ctx) -> CaseResult {
    let report = ctx.backend.health_check().await;
    if !report.backend_type.is_empty() && report.backend_type == ctx.caps.backend_type {
        return Ok(());
    }
    Err(Failure::new("backend_type of the health report")
        .operation(Operation::HealthCheck)
        .expected(format!(
            "{:?}, as declared in capabilities",
            ctx.caps.backend_type
        ))
        .got(format!("{:?}", report.backend_type)))
}

/// The health report carries a measured latency.
pub async fn health_check_measures_latency(ctx: Ctx) -> CaseResult {
    let started = tokio::time::Instant::now();
    let report = ctx.backend.health_check().await;
    let outer = started.elapsed();
    // The probe happens inside the call, so its latency cannot exceed the call's duration.
    if report.latency > Duration::ZERO && report.latency <= outer {
        return Ok(());
    }
    Err(Failure::new("latency of the health report")
        .operation(Operation::HealthCheck)
        .expected(format!(
            "a measured latency in (0, {outer:?}], the call's own duration"
        ))
        .got(format!("{:?}", report.latency)))
}
