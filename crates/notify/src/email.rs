//! E-mail: `MailComposer`, the consumer that writes the messages each event calls for (into
//! `email_messages`, in its inbox transaction), and `Mailer`, the worker that sends them over
//! SMTP with retries. Customers hear of their order placed, shipped, refunded and cancelled;
//! staff of each new order, of a variant going low on stock, and of a webhook endpoint the
//! store disabled.

use std::sync::Arc;
use std::time::Duration;

use emporium_bus::{EventHandler, HandlerError};
use emporium_db::{Arg, Db};
use emporium_kernel::{Clock, Envelope};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain;
use crate::store;
use crate::templates::{self, Message, OrderView};

/// Inbox name; never change it.
const CONSUMER: &str = "notify_mail";
const CLAIM_BATCH: i64 = 16;
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Who writes, to whom on the staff side, and when stock is low; from `notify.email`.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The sender, `Name <address>` or an address.
    pub from: String,
    /// Staff addresses told of new orders, low stock and disabled endpoints.
    pub staff: Vec<String>,
    /// The store's name, in subjects and footers.
    pub store_name: String,
    /// A variant whose available units fall below this is low on stock.
    pub low_stock_threshold: i64,
    /// Each send's deadline.
    pub timeout: Duration,
    /// The waits between attempts; when spent, the message is `failed`.
    pub retry_delays_ms: Vec<u64>,
}

/// True when `s` is an e-mail address, bare or as `Name <address>`.
pub fn is_mailbox(s: &str) -> bool {
    s.parse::<Mailbox>().is_ok()
}

/// A message to send: its kind, recipient and content.
type Outgoing = (&'static str, String, Message);

/// A variant's availability as an event told it: the variant, whether it is below the
/// threshold, and its available units.
type StockLevel = (Uuid, bool, i64);

/// Writes the e-mails events call for.
pub struct MailComposer {
    db: Db,
    clock: Arc<dyn Clock>,
    settings: MailSettings,
    composed: Arc<Notify>,
}

impl MailComposer {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        settings: MailSettings,
        composed: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            clock,
            settings,
            composed,
        }
    }

    /// The messages of one event, each with its kind and recipient; and the low-stock change
    /// it makes (`Some(true)`: now low, `Some(false)`: not low any more).
    fn compose(&self, e: &Envelope) -> (Vec<Outgoing>, Option<StockLevel>) {
        let store = self.settings.store_name.as_str();
        let staff = |kind: &'static str, m: &Message| {
            self.settings
                .staff
                .iter()
                .map(|to| (kind, to.clone(), m.clone()))
                .collect::<Vec<_>>()
        };
        match e.event_type.as_str() {
            "order.placed" => {
                let order: OrderView = serde_json::from_value(e.data.clone()).unwrap_or_default();
                let mut out = Vec::new();
                if !order.email.is_empty() {
                    out.push((
                        "order_placed",
                        order.email.clone(),
                        templates::order_placed(store, &order),
                    ));
                }
                out.extend(staff("new_order", &templates::new_order(store, &order)));
                (out, None)
            }
            "order.changed" => {
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct Changed {
                    change: Change,
                    order: OrderView,
                }
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct Change {
                    #[serde(rename = "type")]
                    kind: String,
                    amount: i64,
                }
                let c: Changed = serde_json::from_value(e.data.clone()).unwrap_or_default();
                if c.order.email.is_empty() {
                    return (Vec::new(), None);
                }
                let message = match c.change.kind.as_str() {
                    "shipped" => Some(("order_shipped", templates::order_shipped(store, &c.order))),
                    "refunded" => Some((
                        "order_refunded",
                        templates::order_refunded(store, &c.order, c.change.amount),
                    )),
                    "cancelled" => Some((
                        "order_cancelled",
                        templates::order_cancelled(store, &c.order),
                    )),
                    _ => None,
                };
                (
                    message
                        .map(|(kind, m)| vec![(kind, c.order.email.clone(), m)])
                        .unwrap_or_default(),
                    None,
                )
            }
            "inventory.stock_changed" => {
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct Stock {
                    variant_id: String,
                    variant_available: i64,
                }
                let s: Stock = serde_json::from_value(e.data.clone()).unwrap_or_default();
                let Ok(variant) = emporium_kernel::id::parse_prefixed("var", &s.variant_id) else {
                    return (Vec::new(), None);
                };
                let low = s.variant_available < self.settings.low_stock_threshold;
                (Vec::new(), Some((variant, low, s.variant_available)))
            }
            "webhook_endpoint.changed" => {
                #[derive(Deserialize, Default)]
                #[serde(default)]
                struct Endpoint {
                    id: String,
                    url: String,
                    action: String,
                }
                let ep: Endpoint = serde_json::from_value(e.data.clone()).unwrap_or_default();
                if ep.action != "disabled" {
                    return (Vec::new(), None);
                }
                (
                    staff(
                        "webhook_disabled",
                        &templates::webhook_disabled(store, &ep.id, &ep.url),
                    ),
                    None,
                )
            }
            _ => (Vec::new(), None),
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for MailComposer {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    fn accepts(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "order.placed"
                | "order.changed"
                | "inventory.stock_changed"
                | "webhook_endpoint.changed"
        )
    }

    async fn handle(&self, e: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(&[e]).await
    }

    async fn handle_batch(&self, events: &[&Envelope]) -> Result<(), HandlerError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let fresh = emporium_db::mark_all_handled(&mut tx, CONSUMER, &ids, now).await?;
        let mut rows = Vec::new();
        for (e, _) in events.iter().zip(fresh).filter(|(_, new)| *new) {
            let (messages, stock) = self.compose(e);
            let mut messages = messages;
            if let Some((variant, low, available)) = stock {
                if !low {
                    store::clear_low_stock(&mut tx, variant).await?;
                } else if store::mark_low_stock(&mut tx, variant, now).await? {
                    let m = templates::low_stock(
                        &self.settings.store_name,
                        &emporium_kernel::ids::VariantId(variant).to_string(),
                        available,
                        self.settings.low_stock_threshold,
                    );
                    messages.extend(
                        self.settings
                            .staff
                            .iter()
                            .map(|to| ("low_stock", to.clone(), m.clone())),
                    );
                }
            }
            for (kind, to, m) in messages {
                rows.push(vec![
                    Arg::Uuid(Uuid::now_v7()),
                    Arg::Uuid(e.id),
                    Arg::Text(kind.to_owned()),
                    Arg::Text(to),
                    Arg::Text(m.subject),
                    Arg::Text(m.text),
                    Arg::Text(m.html),
                    Arg::Text("pending".to_owned()),
                    Arg::Int(0),
                    Arg::Time(now),
                    Arg::Time(now),
                ]);
            }
        }
        let made = !rows.is_empty();
        store::insert_emails(&mut tx, rows).await?;
        tx.commit().await?;
        if made {
            self.composed.notify_one();
        }
        Ok(())
    }
}

/// Sends composed e-mails over SMTP, retrying failures for about a day.
pub struct Mailer {
    db: Db,
    clock: Arc<dyn Clock>,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
    retry_delays_ms: Vec<u64>,
    wake: Arc<Notify>,
}

/// Why the mailer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("notify.email.from is not an e-mail address")]
    From,
    #[error("notify.email.smtp_url is not an SMTP URL: {0}")]
    Url(String),
}

impl Mailer {
    /// A mailer sending through `smtp_url` (`smtp://host:port`, `smtps://user:pass@host`, or
    /// `smtp://host?tls=required` for STARTTLS).
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        smtp_url: &str,
        settings: &MailSettings,
        wake: Arc<Notify>,
    ) -> Result<Self, MailerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let from: Mailbox = settings.from.parse().map_err(|_| MailerError::From)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| MailerError::Url(e.to_string()))?
            .timeout(Some(settings.timeout))
            .build();
        Ok(Self {
            db,
            clock,
            from,
            transport,
            timeout: settings.timeout,
            retry_delays_ms: settings.retry_delays_ms.clone(),
            wake,
        })
    }

    /// Sends due e-mails until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = self.until_next_due().await;
            let sent = if wait.is_zero() {
                match self.send_due().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take due e-mails; will retry");
                        0
                    }
                }
            } else {
                0
            };
            if sent > 0 {
                continue;
            }
            let wait = if wait.is_zero() {
                Duration::from_millis(50)
            } else {
                wait
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        let next = match self.db.read().await {
            Ok(mut conn) => store::next_email_due(&mut conn).await.ok().flatten(),
            Err(_) => None,
        };
        next.map_or(IDLE_POLL, |at| {
            Duration::try_from(at - self.clock.now())
                .unwrap_or(Duration::ZERO)
                .min(IDLE_POLL)
        })
    }

    /// Takes a batch and sends it, one message after another over the pooled connection.
    async fn send_due(&self) -> Result<usize, emporium_db::DbError> {
        let now = self.clock.now();
        let lease = self.timeout * (CLAIM_BATCH as u32) + Duration::from_secs(30);
        let mut tx = self.db.begin_write().await?;
        let batch = store::claim_emails(&mut tx, now, now + lease, CLAIM_BATCH).await?;
        tx.commit().await?;
        let n = batch.len();
        for row in batch {
            let result = self.send(&row).await;
            let at = self.clock.now();
            let attempts = row.attempts + 1;
            let (status, next, error) = match &result {
                Ok(()) => ("sent", at, None),
                Err(e) => {
                    match domain::next_delay(&self.retry_delays_ms, attempts, fastrand::f64()) {
                        Some(wait) => ("pending", at + wait, Some(e.as_str())),
                        None => ("failed", at, Some(e.as_str())),
                    }
                }
            };
            metrics::counter!("emporium_emails_total", "outcome" => status).increment(1);
            if let Err(e) = &result {
                tracing::warn!(kind = %row.kind, attempts, error = %e, "e-mail not sent");
            }
            let mut tx = self.db.begin_write().await?;
            store::record_email(&mut tx, row.id, status, attempts, next, error, at).await?;
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn send(&self, row: &store::EmailRow) -> Result<(), String> {
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|_| "the recipient is not an e-mail address".to_owned())?;
        let email = Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&row.subject)
            .header(lettre::message::header::MessageId::from(format!(
                "<{}@emporium>",
                row.id
            )))
            .multipart(MultiPart::alternative_plain_html(
                row.text_body.clone(),
                row.html_body.clone(),
            ))
            .map_err(|e| format!("the message cannot be built: {e}"))?;
        tokio::time::timeout(self.timeout, self.transport.send(email))
            .await
            .map_err(|_| "the SMTP server did not answer in time".to_owned())?
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}
