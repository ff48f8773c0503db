//! Domain types: validated on construction, free of I/O.

pub mod coupon;
pub mod email;
pub mod money;
pub mod order_code;
pub mod slug;
pub mod state;
pub mod view_token;

pub use coupon::{CouponCode, CouponError, Discount};
pub use email::{Email, EmailError, mask_email};
pub use money::{Vnd, VndError, format_vnd};
pub use order_code::{CodeCharset, CodePattern, CodePatternError, OrderCode, OrderCodeError};
pub use slug::{CourseSlug, SlugError};
pub use state::{EventKind, ItemStatus, OrderStatus, Queue, Stage, Status, UnknownStatus};
pub use view_token::ViewToken;
