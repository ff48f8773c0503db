//! The spans work runs in, so every log line of one item's work carries its id and order code.

/// The span every stage's work on one item runs in: its id now, its order code once the stage
/// has read it ([`record_order_code`]).
pub fn item_span(item_id: u64) -> tracing::Span {
    tracing::info_span!("item", item_id, order_code = tracing::field::Empty)
}

/// Fills the current [`item_span`]'s order code.
pub fn record_order_code(code: &str) {
    tracing::Span::current().record("order_code", code);
}
