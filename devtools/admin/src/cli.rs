use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "coursedrop-admin", version, about = "Operate coursedrop: catalog, orders, items, payments.")]
pub(crate) struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Who is acting, for the timeline (recorded as operator:<name>).
    #[arg(long, global = true, env = "USER", default_value = "admin")]
    pub(crate) operator: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// The catalog.
    #[command(subcommand)]
    Course(CourseCommand),
    /// Discount codes.
    #[command(subcommand)]
    Coupon(CouponCommand),
    /// Who may sign in to the console, and in which role.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Orders, newest first.
    Orders {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One order: its items and its timeline.
    Order { code: String },
    /// Items, most recently changed first.
    Items {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Items in a working state longer than its deadline.
    Stuck,
    /// Send a failed item back to the stage it failed in.
    Retry { item_id: u64 },
    /// Send a completed item's delivery email again.
    ResendEmail { item_id: u64 },
    /// Move the Drive access of an order's delivered courses to another Google address (the
    /// old one loses it), and email the links there. No limit, unlike the buyer's own.
    MoveAccess {
        code: String,
        /// The Google address that gets the access.
        #[arg(long)]
        to: String,
        /// Only this course of the order.
        #[arg(long)]
        course: Option<String>,
    },
    /// Refund a paid order: revoke its items and remove the buyer's Drive access.
    Refund {
        code: String,
        #[arg(long)]
        reason: String,
    },
    /// Accept the late payment of an expired (cancelled) order: it becomes paid and its
    /// courses are delivered.
    AcceptLate { code: String },
    /// Delete orders that expired unpaid more than DAYS ago (no payment, nothing paid), with
    /// their items and timeline: they hold only a stranger's email. Safe to run on a schedule.
    PurgeUnpaid {
        #[arg(long, default_value_t = 90)]
        older_than_days: u32,
    },
    /// Cancel an unpaid order.
    Cancel {
        code: String,
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
    /// Payments that matched no order.
    #[command(subcommand)]
    Payments(PaymentCommand),
    /// payOS, the payment-link gateway.
    #[command(subcommand)]
    Payos(PayosCommand),
    /// List each bank feed's transfers since its cursor and record what the webhooks missed
    /// (one pass, as the scheduled reconciler runs it).
    Reconcile {
        /// Only this feed: sepay, casso or payos (payOS: each pending order's link is asked).
        #[arg(long)]
        gateway: Option<String>,
        /// List from this day (YYYY-MM-DD, Vietnam time) instead of the stored cursor.
        #[arg(long)]
        since: Option<String>,
    },
    /// Each function's own database user (infra/db-users.sql) on the database of
    /// DATABASE_URL, with the passwords in DB_PASSWORD_<FUNCTION> (infra/db-users passes them
    /// from the stack's secrets). Run as the database's administrator after `make migrate`.
    DbUsers,
}

#[derive(Subcommand)]
pub(crate) enum CourseCommand {
    /// Add a course; its source must exist, hold files and be deliverable in the mode asked.
    Add {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        title: String,
        /// Price in VND (an integer).
        #[arg(long)]
        price: i64,
        /// s3://bucket/prefix/, drive://<folderId>, or the Drive folder's address as the browser
        /// shows it (https://drive.google.com/drive/folders/<id>)
        #[arg(long)]
        source: String,
        /// copy: a folder of the buyer's own with the course copied into it; share (Drive
        /// sources only): read access to the seller's folder itself, nothing copied
        #[arg(long, default_value = "copy")]
        mode: String,
        #[arg(long)]
        lms_course_id: Option<String>,
    },
    List,
    /// Take a course off sale; orders already made keep it.
    Disable {
        slug: String,
    },
    /// Put a course back on sale.
    Enable {
        slug: String,
    },
    /// Deliver a course from another source or in another mode, after the same check as
    /// `course add`. Courses already delivered are not touched.
    SetSource {
        slug: String,
        #[arg(long)]
        source: String,
        #[arg(long, default_value = "copy")]
        mode: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum CouponCommand {
    /// Add a coupon: a percentage or an amount off, optionally limited in uses, time and courses.
    Add {
        /// What buyers type (3-32 letters, digits, - and _; any case).
        #[arg(long)]
        code: String,
        /// Percent off (1-100), rounded down to the đồng.
        #[arg(long, conflicts_with = "amount", required_unless_present = "amount")]
        percent: Option<u8>,
        /// VND off (at most the price of the courses it applies to).
        #[arg(long)]
        amount: Option<i64>,
        /// How many orders may use it (unlimited without).
        #[arg(long)]
        max_uses: Option<u32>,
        /// Valid from: YYYY-MM-DD (Vietnam time, from midnight), YYYY-MM-DD HH:MM or RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Valid until: YYYY-MM-DD (Vietnam time, through that whole day), YYYY-MM-DD HH:MM or RFC 3339.
        #[arg(long)]
        until: Option<String>,
        /// Only for this course (repeat for more); every course without.
        #[arg(long = "course")]
        courses: Vec<String>,
    },
    List,
    /// Take a coupon off: orders placed with it keep their price.
    Disable {
        code: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum PaymentCommand {
    /// Incoming transfers kept without an order, newest first.
    Unmatched {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Count an unmatched payment towards an order.
    Attach { payment_id: u64, code: String },
    /// Transfers held as possible duplicates: another feed reported one with the same account,
    /// amount and text moments apart, and no bank reference tells the two apart.
    Held {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A held payment is a transfer of its own: count it towards the order its lookalike paid.
    Release { payment_id: u64 },
    /// A held payment is the transfer it resembles, reported twice: keep it as evidence only.
    Drop { payment_id: u64 },
}

#[derive(Subcommand)]
pub(crate) enum StaffCommand {
    /// Give an address a console account (or give a disabled one back); it signs in by a
    /// link sent to it.
    Add {
        #[arg(long)]
        email: String,
        /// owner: everything; support: look, resend, move access and retry (no refunds,
        /// catalog, coupons or staff).
        #[arg(long)]
        role: String,
    },
    List,
    /// Change an account's role (its open sessions take the new role at once).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// End an account: it signs in no more, and its open sessions end at once.
    Disable {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum PayosCommand {
    /// Register URL (the deployed `POST /webhooks/payos`) as the payOS webhook. payOS calls it
    /// once first to check it, so deploy with PAYOS_CHECKSUM_KEY set before running this.
    ConfirmWebhook { url: String },
}
