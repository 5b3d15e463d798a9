//! The live redemption feed: `/console/live` and its Server-Sent Events.
//!
//! One [`Hub`] per gateway holds one subscription to
//! `giftcode.events.code.redeemed`, `wallet.events.wallet.credited` and
//! `wallet.events.wallet.reversed` (plain
//! NATS subscriptions to the stream subjects: the feed reads events as they
//! are published and consumes nothing, so it cannot delay or steal a credit)
//! and fans each event out to every open page through a bounded channel. A
//! page whose channel is full is dropped, not buffered: its browser
//! reconnects and resyncs. The subscription exists only while a page is open.
//!
//! Each stream starts with a `snapshot` of the groups' stats, read after the
//! stream has joined the hub, so counters start from the truth and resync on
//! every reconnect (the browser's `Last-Event-ID` reconnect, or a reload). An
//! event redeemed before that read is marked `counted`, so it is shown but
//! not counted twice.
//!
//! Streams have their own cap (`CONSOLE_MAX_STREAMS`), outside the bound on
//! requests in flight, and end when the gateway is told to stop, so an open
//! tab does not hold up the drain.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::State,
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use maud::html;
use serde::Serialize;
use shared_events::{
    Currency, Envelope, GroupId, Limit, RedemptionId,
    endpoint::giftcode as gc,
    events::{Cause, CodeRedeemed, WalletCredited, WalletReversed},
    giftcode::{GetGroupRequest, ListGroupsRequest},
    subjects::events as subjects,
};
use svc_kit::nats::ServiceClient;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    AppState,
    console::{
        groups::capacity,
        layout::{self, Nav, money, thousands},
        session::Signed,
    },
    extract::RequestId,
};

/// Events a page may have waiting before it counts as too slow.
const PER_PAGE: usize = 256;

/// What a page is told.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Redeemed {
        redemption_id: RedemptionId,
        group_id: GroupId,
        group_name: String,
        amount: i64,
        currency: String,
        /// The last four digits only.
        phone: String,
        redeemed_at: DateTime<Utc>,
        /// Already in the snapshot's counters.
        counted: bool,
    },
    Credited {
        redemption_id: RedemptionId,
    },
    /// A redemption undone (DESIGN.md §12): counted out again.
    Reversed {
        redemption_id: RedemptionId,
        group_id: GroupId,
        amount: i64,
        currency: String,
        phone: String,
        release_code: bool,
        reversed_at: DateTime<Utc>,
    },
}

pub struct Hub {
    nats: ServiceClient,
    streams: Arc<Semaphore>,
    stop: CancellationToken,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    pages: Vec<mpsc::Sender<Arc<LiveEvent>>>,
    pumping: bool,
}

impl Hub {
    pub fn new(nats: ServiceClient, max_streams: usize, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            nats,
            streams: Arc::new(Semaphore::new(max_streams.max(1))),
            stop,
            state: Mutex::new(HubState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new page's channel, or `None` at the cap.
    fn join(self: &Arc<Self>) -> Option<(OwnedSemaphorePermit, mpsc::Receiver<Arc<LiveEvent>>)> {
        let permit = self.streams.clone().try_acquire_owned().ok()?;
        let (tx, rx) = mpsc::channel(PER_PAGE);
        let mut state = self.lock();
        state.pages.push(tx);
        if !state.pumping {
            state.pumping = true;
            let hub = self.clone();
            tokio::spawn(async move {
                if let Err(e) = hub.pump().await {
                    tracing::warn!(error = %e, "live feed stopped");
                }
                let mut state = hub.lock();
                state.pumping = false;
                // Pages that joined while it was failing end, and reconnect.
                state.pages.clear();
            });
        }
        Some((permit, rx))
    }

    /// Reads the events and fans them out while any page is open.
    async fn pump(self: &Arc<Self>) -> anyhow::Result<()> {
        let client = self.nats.nats();
        let redeemed = client.subscribe(subjects::CODE_REDEEMED).await?;
        let credited = client.subscribe(subjects::WALLET_CREDITED).await?;
        let reversed = client.subscribe(subjects::WALLET_REVERSED).await?;
        let mut events =
            futures::stream::select(futures::stream::select(redeemed, credited), reversed);
        let mut names: HashMap<GroupId, String> = HashMap::new();
        let mut idle = tokio::time::interval(Duration::from_secs(2));
        loop {
            let msg = tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                _ = idle.tick() => {
                    if self.sweep(None) { return Ok(()) }
                    continue;
                }
                msg = events.next() => match msg {
                    Some(m) => m,
                    None => anyhow::bail!("the subscription ended"),
                },
            };
            let event = if msg.subject.as_str() == subjects::CODE_REDEEMED {
                let Ok(e) = serde_json::from_slice::<Envelope<CodeRedeemed>>(&msg.payload) else {
                    continue;
                };
                let d = e.data;
                let group_name = match names.get(&d.group_id) {
                    Some(n) => n.clone(),
                    None => {
                        let req = GetGroupRequest { id: d.group_id };
                        let name = self
                            .nats
                            .request::<gc::GroupsGet>(&req, None)
                            .await
                            .map(|g| g.name)
                            .unwrap_or_default();
                        if !name.is_empty() {
                            names.insert(d.group_id, name.clone());
                        }
                        name
                    }
                };
                LiveEvent::Redeemed {
                    redemption_id: d.redemption_id,
                    group_id: d.group_id,
                    group_name,
                    amount: d.amount.get(),
                    currency: d.currency.to_string(),
                    phone: d.phone.masked(),
                    redeemed_at: d.redeemed_at,
                    counted: false,
                }
            } else if msg.subject.as_str() == subjects::WALLET_REVERSED {
                let Ok(e) = serde_json::from_slice::<Envelope<WalletReversed>>(&msg.payload) else {
                    continue;
                };
                let d = e.data;
                LiveEvent::Reversed {
                    redemption_id: d.redemption_id,
                    group_id: d.group_id,
                    amount: d.amount.get(),
                    currency: d.currency.to_string(),
                    phone: d.phone.masked(),
                    release_code: d.release_code,
                    reversed_at: d.reversed_at,
                }
            } else {
                let Ok(e) = serde_json::from_slice::<Envelope<WalletCredited>>(&msg.payload) else {
                    continue;
                };
                match e.data.cause {
                    Cause::GiftCodeRedemption(redemption_id) => {
                        LiveEvent::Credited { redemption_id }
                    }
                    _ => continue,
                }
            };
            if self.sweep(Some(Arc::new(event))) {
                return Ok(());
            }
        }
    }

    /// Hands `event` to every page; drops pages that are gone or too slow.
    /// True when no page is left (the pump then stops).
    fn sweep(&self, event: Option<Arc<LiveEvent>>) -> bool {
        let mut state = self.lock();
        state.pages.retain(|page| match &event {
            Some(e) => page.try_send(e.clone()).is_ok(),
            None => !page.is_closed(),
        });
        if state.pages.is_empty() {
            state.pumping = false;
            return true;
        }
        false
    }
}

#[derive(Serialize)]
struct Counter {
    id: GroupId,
    name: String,
    currency: Currency,
    redemptions: i64,
    capacity: i64,
    redeemed_amount: i64,
    remaining_amount: i64,
}

async fn counters(s: &AppState, rid: &str) -> Result<Vec<Counter>, crate::ApiError> {
    let req = ListGroupsRequest {
        limit: Limit::new(100),
        cursor: None,
    };
    let page = s.nats.request::<gc::GroupsList>(&req, Some(rid)).await?;
    Ok(page
        .items
        .iter()
        .map(|g| Counter {
            id: g.id,
            name: g.name.clone(),
            currency: g.currency.clone(),
            redemptions: g.stats.redemptions,
            capacity: capacity(g),
            redeemed_amount: g.stats.redeemed_amount,
            remaining_amount: g.stats.remaining_amount,
        })
        .collect())
}

/// `/console/live`: the counters as they are now; the script keeps them and
/// the feed current from `/console/live/events`.
pub async fn page(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
) -> Response {
    let counters = match counters(&s, &rid).await {
        Ok(c) => c,
        Err(e) => return layout::error_page(&signed, Nav::Live, "Live", &e),
    };
    let body = html! {
        div class="title-row" {
            h1 { "Live redemptions" }
            p id="live-status" class="badge" role="status" aria-live="polite" { "connecting…" }
        }
        section aria-labelledby="counters" {
            h2 id="counters" { "Groups" }
            div class="table-wrap" {
                table id="live-counters" {
                    thead { tr {
                        th scope="col" { "Group" } th scope="col" { "Redeemed" }
                        th scope="col" { "Redeemed amount" } th scope="col" { "Remaining" }
                    } }
                    tbody {
                        @for c in &counters {
                            tr data-group=(c.id) {
                                td { a href={ "/console/groups/" (c.id) } { (c.name) } }
                                td class="num" data-field="redemptions" { (thousands(c.redemptions)) " / " (thousands(c.capacity)) }
                                td class="num" data-field="redeemed_amount" { (money(c.redeemed_amount, &c.currency)) }
                                td class="num" data-field="remaining_amount" { (thousands(c.remaining_amount)) " " (c.currency) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="feed" {
            h2 id="feed" { "Redemptions as they happen" }
            div class="table-wrap" {
                table id="live-feed" aria-live="polite" {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Group" } th scope="col" { "Amount" }
                        th scope="col" { "Phone" } th scope="col" { "Status" }
                    } }
                    tbody {}
                }
            }
            p class="hint" { "Shows redemptions made while this page is open, newest first." }
        }
    };
    layout::page(&signed, Nav::Live, "Live", body)
}

/// `/console/live/events`: `snapshot`, then `redeemed` and `credited`.
pub async fn events(_: Signed, State(s): State<AppState>, RequestId(rid): RequestId) -> Response {
    let Some((permit, rx)) = s.hub.join() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "5")],
            "too many live streams are open\n",
        )
            .into_response();
    };
    let read_at = Utc::now();
    let snapshot = match counters(&s, &rid).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let first = Event::default()
        .event("snapshot")
        .retry(Duration::from_secs(2))
        .json_data(&snapshot)
        .unwrap_or_default();
    let rest = futures::stream::unfold((rx, permit), move |(mut rx, permit)| async move {
        let event = rx.recv().await?;
        let sse = match event.as_ref() {
            LiveEvent::Redeemed {
                redeemed_at,
                redemption_id,
                ..
            } => {
                let mut e = (*event).clone();
                if let LiveEvent::Redeemed { counted, .. } = &mut e {
                    *counted = *redeemed_at < read_at;
                }
                Event::default()
                    .event("redeemed")
                    .id(redemption_id.to_string())
                    .json_data(&e)
            }
            LiveEvent::Credited { .. } => Event::default().event("credited").json_data(&*event),
            LiveEvent::Reversed { reversed_at, .. } => {
                // Already counted out of the snapshot: marked `counted`.
                let mut v = serde_json::to_value(&*event).unwrap_or_default();
                v["counted"] = (*reversed_at < read_at).into();
                Event::default().event("reversed").json_data(&v)
            }
        }
        .unwrap_or_default();
        Some((Ok::<_, Infallible>(sse), (rx, permit)))
    });
    let stream = futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .take_until(s.hub.stop.clone().cancelled_owned());
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Arc<LiveEvent> {
        Arc::new(LiveEvent::Credited {
            redemption_id: RedemptionId::generate(),
        })
    }

    #[tokio::test]
    async fn a_page_that_falls_behind_is_dropped_not_buffered() {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("127.0.0.1:1")
            .await
            .expect("lazy client");
        let hub = Hub::new(
            ServiceClient::new(client, Duration::from_secs(1)),
            4,
            CancellationToken::new(),
        );
        let (slow_tx, mut slow) = mpsc::channel(PER_PAGE);
        let (fast_tx, mut fast) = mpsc::channel(PER_PAGE);
        hub.lock().pages = vec![slow_tx, fast_tx];
        for _ in 0..=PER_PAGE {
            assert!(!hub.sweep(Some(event())), "a page is still open");
            assert!(
                fast.try_recv().is_ok(),
                "the page that reads gets every event"
            );
        }
        assert_eq!(hub.lock().pages.len(), 1, "the slow page is dropped");
        let mut held = 0;
        while slow.recv().await.is_some() {
            held += 1;
        }
        assert_eq!(held, PER_PAGE, "it got what fitted, then its stream ended");
        drop(fast);
        assert!(hub.sweep(None), "no page left: the subscription stops");
    }
}
