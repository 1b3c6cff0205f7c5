//! Marking persisted requests ISSUED in Redis, one batch behind the transactions: best effort
//! (MySQL is the record, and the API answers from it whenever Redis does not say ISSUED), so
//! it stays off the critical path.

use couponrush_cache::ReservationStore;

use crate::batch::Confirmed;

/// The Redis confirm of the last batch, running while the next batch's transaction does. At
/// most one is in flight, so Redis never falls more than a batch behind.
#[derive(Debug, Default)]
pub struct Confirmations {
    in_flight: Option<tokio::task::JoinHandle<()>>,
}

impl Confirmations {
    /// Waits for the previous batch's confirm, then starts this one's.
    pub async fn start(&mut self, reservations: &ReservationStore, confirmed: Vec<Confirmed>) {
        self.finish().await;
        let reservations = reservations.clone();
        self.in_flight = Some(tokio::spawn(async move {
            confirm(&reservations, &confirmed).await;
        }));
    }

    /// Waits for the confirm in flight, if any.
    pub async fn finish(&mut self) {
        if let Some(previous) = self.in_flight.take() {
            previous.await.ok();
        }
    }
}

/// Marks persisted requests issued in Redis; a failure is logged, not retried.
async fn confirm(reservations: &ReservationStore, confirmed: &[Confirmed]) {
    let issued: Vec<_> = confirmed
        .iter()
        .map(|(coupon, user, request, at)| (*coupon, user, *request, *at))
        .collect();
    if let Err(error) = reservations.mark_issued_many(&issued).await {
        tracing::warn!(%error, users = issued.len(), "could not mark issued in Redis");
    }
}
