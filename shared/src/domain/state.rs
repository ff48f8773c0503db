//! Order and item state machines. The allowed transitions are written once, here, as data;
//! the store refuses anything else before it touches the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

/// What a status type offers: its stored name and its outgoing edges.
pub trait Status: Copy + Eq + fmt::Debug + 'static {
    const KIND: &'static str;
    const ALL: &'static [Self];
    const TRANSITIONS: &'static [(Self, Self)];

    fn as_str(self) -> &'static str;

    fn can_become(self, to: Self) -> bool {
        Self::TRANSITIONS.iter().any(|&(a, b)| a == self && b == to)
    }

    fn parse(s: &str) -> Result<Self, UnknownStatus> {
        Self::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus { kind: Self::KIND, value: s.to_string() })
    }
}

/// A status type from its variants and stored names, once: the enum, `Status` (its `KIND`,
/// `ALL` in declaration order, `as_str`, and the allowed transitions as data), `Display` and
/// `FromStr`. Nothing can be added to one list and forgotten in another.
macro_rules! status_enum {
    (
        $name:ident, $kind:literal,
        { $($variant:ident => $text:literal),+ $(,)? },
        transitions: [ $( $(#[doc = $why:literal])* ($from:ident, $to:ident) ),* $(,)? ] $(,)?
    ) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Status for $name {
            const KIND: &'static str = $kind;
            const ALL: &'static [Self] = &[$($name::$variant),+];
            const TRANSITIONS: &'static [(Self, Self)] = &[$(($name::$from, $name::$to)),*];
            fn as_str(self) -> &'static str {
                self.name()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$name as Status>::parse(s)
            }
        }

        /// How the store reads a stored name into the enum (`#[sqlx(try_from = "String")]`).
        impl TryFrom<String> for $name {
            type Error = UnknownStatus;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                <$name as Status>::parse(&s)
            }
        }
    };
}

status_enum!(OrderStatus, "order status", {
    Pending => "pending",
    Paid => "paid",
    Completed => "completed",
    Cancelled => "cancelled",
    Refunded => "refunded",
}, transitions: [
    (Pending, Paid),
    (Pending, Cancelled),
    /// An operator accepts a payment that arrived after the order expired.
    (Cancelled, Paid),
    /// Money that reached a cancelled order is given back.
    (Cancelled, Refunded),
    (Paid, Completed),
    (Paid, Refunded),
    (Completed, Refunded),
]);

status_enum!(ItemStatus, "item status", {
    AwaitingPayment => "awaiting_payment",
    Enrolling => "enrolling",
    Enrolled => "enrolled",
    Delivering => "delivering",
    Delivered => "delivered",
    Completed => "completed",
    Failed => "failed",
    Revoked => "revoked",
    Cancelled => "cancelled",
}, transitions: [
    (AwaitingPayment, Enrolling),
    (AwaitingPayment, Cancelled),
    /// An operator accepts the late payment of an expired order: its items go to enrollment.
    (Cancelled, Enrolling),
    (Enrolling, Enrolled),
    (Enrolling, Failed),
    (Enrolled, Delivering),
    (Enrolled, Failed),
    (Delivering, Delivered),
    (Delivering, Failed),
    /// A stopping worker hands its claimed item back for another to take.
    (Delivering, Enrolled),
    (Delivered, Completed),
    (Delivered, Failed),
    /// An operator's retry re-enters the stage that failed (see Stage::retry_status).
    (Failed, Enrolling),
    (Failed, Enrolled),
    (Failed, Delivered),
    /// A refund revokes access from any state the buyer's payment reached.
    (Enrolling, Revoked),
    (Enrolled, Revoked),
    (Delivering, Revoked),
    (Delivered, Revoked),
    (Completed, Revoked),
    (Failed, Revoked),
]);

status_enum!(Stage, "stage", {
    Enroll => "enroll",
    Deliver => "deliver",
    Finalize => "finalize",
}, transitions: []);

status_enum!(Queue, "queue", {
    Enroll => "enroll",
    Deliver => "deliver",
    Finalize => "finalize",
}, transitions: []);

// What an `order_events` row records.
status_enum!(EventKind, "event kind", {
    OrderCreated => "order_created",
    OrderStatus => "order_status",
    ItemStatus => "item_status",
    PaymentReceived => "payment_received",
    NeedsAttention => "needs_attention",
    EmailResent => "email_resent",
    StageResent => "stage_resent",
    Unenrolled => "unenrolled",
    ReminderSent => "reminder_sent",
    AccessMoved => "access_moved",
    // The address the access was moved away from was told (what, when, whom to ask).
    AccessMoveNotified => "access_move_notified",
    // Another feed reported a transfer already counted: kept as evidence.
    PaymentSeenAgain => "payment_seen_again",
    // A transfer that looks like one already counted, held for an operator; and an operator
    // saying it was that one.
    PaymentHeld => "payment_held",
    PaymentDropped => "payment_dropped",
    // A payment route of the order's own (a payOS link, a virtual account) opened, failed to
    // open, or closed.
    PaymentRoute => "payment_route",
}, transitions: []);

// A payment held as a suspected duplicate of another (`payments.hold`; NULL: an ordinary
// payment), and what an operator said of it.
status_enum!(PaymentHold, "payment hold", {
    Held => "held",
    Released => "released",
    Dropped => "dropped",
}, transitions: [
    /// A transfer of its own: it counts.
    (Held, Released),
    /// The transfer it resembles, reported twice: evidence only.
    (Held, Dropped),
]);

impl PaymentHold {
    /// Whether the payment stays uncounted (and is not what another report is compared with).
    pub fn uncounted(self) -> bool {
        matches!(self, PaymentHold::Held | PaymentHold::Dropped)
    }
}

impl ItemStatus {
    /// The queue whose consumer works on an item that has just entered this status: the
    /// store writes its outbox row in the same transaction as the transition.
    pub fn starts_queue(self) -> Option<Queue> {
        match self {
            ItemStatus::Enrolling => Some(Queue::Enroll),
            ItemStatus::Enrolled => Some(Queue::Deliver),
            ItemStatus::Delivered => Some(Queue::Finalize),
            _ => None,
        }
    }

    /// The queue whose message moves an item on from this status: the one the status
    /// started, and for `delivering` (a claim of `enrolled`'s work) the deliver queue. An item
    /// that leaves this status has consumed that queue's outbox rows.
    pub fn served_by(self) -> Option<Queue> {
        self.starts_queue().or((self == ItemStatus::Delivering).then_some(Queue::Deliver))
    }

    /// The column that records when an item entered this status, if it has one.
    pub(crate) fn timestamp_column(self) -> Option<&'static str> {
        match self {
            ItemStatus::Enrolling => Some("enrolling_at"),
            ItemStatus::Enrolled => Some("enrolled_at"),
            ItemStatus::Delivering => Some("delivering_at"),
            ItemStatus::Delivered => Some("delivered_at"),
            ItemStatus::Completed => Some("completed_at"),
            ItemStatus::Failed => Some("failed_at"),
            ItemStatus::Revoked => Some("revoked_at"),
            ItemStatus::AwaitingPayment | ItemStatus::Cancelled => None,
        }
    }
}

impl OrderStatus {
    pub(crate) fn timestamp_column(self) -> Option<&'static str> {
        match self {
            OrderStatus::Paid => Some("paid_at"),
            OrderStatus::Completed => Some("completed_at"),
            _ => None,
        }
    }
}

impl Stage {
    /// Where an operator's retry sends a failed item: the status from which the stage's
    /// consumer picks it up. The deliver job claims `enrolled` items, so a failed delivery
    /// goes back to `enrolled`, not `delivering`.
    pub fn retry_status(self) -> ItemStatus {
        match self {
            Stage::Enroll => ItemStatus::Enrolling,
            Stage::Deliver => ItemStatus::Enrolled,
            Stage::Finalize => ItemStatus::Delivered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ItemStatus::ALL {
            assert_eq!(s.as_str().parse::<ItemStatus>().unwrap(), *s);
        }
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), *s);
        }
        assert_eq!(
            "shipped".parse::<OrderStatus>(),
            Err(UnknownStatus { kind: "order status", value: "shipped".into() })
        );
    }

    #[test]
    fn transitions_never_loop_and_terminal_states_stay_put() {
        for (a, b) in ItemStatus::TRANSITIONS {
            assert_ne!(a, b);
        }
        assert!(ItemStatus::ALL.iter().all(|to| !ItemStatus::Revoked.can_become(*to)));
        // A cancelled item leaves only when an operator accepts its order's late payment.
        let out_of_cancelled: Vec<_> =
            ItemStatus::ALL.iter().filter(|to| ItemStatus::Cancelled.can_become(**to)).copied().collect();
        assert_eq!(out_of_cancelled, vec![ItemStatus::Enrolling]);
        assert!(OrderStatus::ALL.iter().all(|to| !OrderStatus::Refunded.can_become(*to)));
    }

    #[test]
    fn delivery_only_starts_from_enrolled() {
        let into_delivering: Vec<_> = ItemStatus::TRANSITIONS
            .iter()
            .filter(|(_, to)| *to == ItemStatus::Delivering)
            .map(|(from, _)| *from)
            .collect();
        assert_eq!(into_delivering, vec![ItemStatus::Enrolled]);
    }

    #[test]
    fn every_retry_target_is_reachable_from_failed() {
        for stage in Stage::ALL {
            assert!(ItemStatus::Failed.can_become(stage.retry_status()), "{stage}");
        }
    }
}

/// The body every stage queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemMessage {
    pub item_id: u64,
}

impl ItemMessage {
    pub fn body(item_id: u64) -> String {
        serde_json::to_string(&ItemMessage { item_id }).expect("a struct of one integer serializes")
    }
}
