//! The root span of each HTTP request (tracing-actix-web): continues an incoming W3C
//! `traceparent`, names the span after the route, records the status and, on the issue
//! endpoint, the coupon, user, request id and outcome. Health probes and
//! metric scrapes, every few seconds from machines, get none: they would bury the requests
//! that matter.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, root_span};

/// Paths polled by machines (Kubernetes probes, Prometheus).
const UNTRACED: [&str; 3] = ["/health/live", "/health/ready", "/metrics"];

#[derive(Debug)]
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if UNTRACED.contains(&request.path()) {
            return Span::none();
        }
        // The issue endpoint records what it decided here, on the request's own span, rather
        // than in a span of its own: one span fewer per request (each costs on every poll),
        // and its log lines carry the fields all the same.
        root_span!(
            request,
            coupon.id = Empty,
            user.id = Empty,
            request.id = Empty,
            outcome = Empty
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
