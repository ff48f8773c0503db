//! The console's words in Vietnamese and English. Templates call `t("key")`; the language is
//! the `lang` cookie's, else the browser's first choice, else Vietnamese.

use axum::http::HeaderMap;

/// (key, Vietnamese, English)
const WORDS: &[(&str, &str, &str)] = &[
    ("console", "Trang quản trị", "Console"),
    ("dashboard", "Tổng quan", "Dashboard"),
    ("orders", "Đơn hàng", "Orders"),
    ("problems", "Cần xử lý", "Problems"),
    ("catalog", "Khoá học", "Catalog"),
    ("coupons", "Mã giảm giá", "Coupons"),
    ("revenue", "Doanh thu", "Revenue"),
    ("audit", "Nhật ký", "Audit"),
    ("sign_in", "Đăng nhập", "Sign in"),
    ("sign_out", "Đăng xuất", "Sign out"),
    ("email", "Email", "Email"),
    ("send_link", "Gửi liên kết đăng nhập", "Email me a sign-in link"),
    (
        "link_sent",
        "Nếu địa chỉ này thuộc nhân viên của cửa hàng, liên kết đăng nhập đã được gửi tới. Liên kết dùng được một lần, trong 15 phút.",
        "If this address belongs to the shop's staff, a sign-in link is on its way. It works once, for 15 minutes.",
    ),
    (
        "link_bad",
        "Liên kết này đã được dùng, đã hết hạn hoặc không đúng. Hãy yêu cầu liên kết mới.",
        "This link was used already, has expired, or is not valid. Ask for a new one.",
    ),
    ("sign_in_as", "Nhấn để đăng nhập vào trang quản trị.", "Press to sign in to the console."),
    ("vn_time", "Giờ Việt Nam (UTC+7)", "Vietnam time (UTC+7)"),
    ("today", "Hôm nay", "Today"),
    ("last_7", "7 ngày", "7 days"),
    ("last_30", "30 ngày", "30 days"),
    ("paid_orders", "đơn đã thanh toán", "paid orders"),
    ("pending", "Chờ thanh toán", "Pending"),
    ("conversion", "Tỉ lệ thanh toán (30 ngày)", "Paid of placed (30 days)"),
    ("time_to_email", "Từ thanh toán đến email", "Payment to email"),
    ("median", "trung vị", "median"),
    ("stuck", "Bị kẹt", "Stuck"),
    ("failed", "Lỗi", "Failed"),
    ("unmatched", "Chuyển khoản chưa khớp", "Unmatched transfers"),
    ("held", "Nghi trùng, đang giữ", "Held as possible duplicates"),
    ("attention", "Đơn cần xem", "Orders to look at"),
    ("reconciliation", "Đối soát gần nhất", "Last reconciliation"),
    ("dead_letters", "Hàng đợi lỗi (DLQ)", "Dead-letter queues"),
    ("unknown", "không rõ", "unknown"),
    ("not_configured", "chưa cấu hình", "not configured"),
    ("revenue_per_day", "Doanh thu theo ngày", "Revenue per day"),
    ("delivery_per_day", "Thời gian giao (trung vị) theo ngày", "Time to delivery (median) per day"),
    ("search", "Tìm", "Search"),
    (
        "search_hint",
        "Mã đơn, email, số điện thoại, số tiền hoặc mã giao dịch",
        "Order code, email, phone, amount or bank reference",
    ),
    ("status", "Trạng thái", "Status"),
    ("course", "Khoá học", "Course"),
    ("coupon", "Mã giảm giá", "Coupon"),
    ("from", "Từ ngày", "From"),
    ("to", "Đến ngày", "To"),
    ("all", "Tất cả", "All"),
    ("export_csv", "Xuất CSV", "Export CSV"),
    ("export_xlsx", "Xuất Excel", "Export Excel"),
    ("next_page", "Trang sau", "Next page"),
    (
        "export_cap",
        "Bộ lọc khớp nhiều đơn hơn một tệp xuất chứa được; hãy thu hẹp khoảng ngày. Tệp chứa các đơn mới nhất, tối đa",
        "The filter matches more orders than one export holds; narrow the dates. The file holds the newest, at most",
    ),
    ("first_page", "Trang đầu", "First page"),
    ("found", "đơn phù hợp", "orders match"),
    ("code", "Mã đơn", "Code"),
    ("phone", "Điện thoại", "Phone"),
    ("total", "Tổng", "Total"),
    ("paid", "Đã trả", "Paid"),
    ("placed", "Đặt lúc", "Placed"),
    ("paid_at", "Thanh toán lúc", "Paid at"),
    ("courses", "Khoá học", "Courses"),
    ("items", "Khoá học trong đơn", "Items"),
    ("payments", "Thanh toán", "Payments"),
    ("routes", "Cách thanh toán riêng của đơn", "The order's own ways to pay"),
    ("payos_link", "Liên kết payOS", "payOS link"),
    ("virtual_account", "Tài khoản ảo", "Virtual account"),
    ("route_open", "đang mở", "open"),
    ("route_closed", "đã đóng", "closed"),
    ("route_failed", "không mở được", "could not be opened"),
    ("checkout_page", "Trang thanh toán", "Checkout page"),
    ("timeline", "Diễn biến", "Timeline"),
    ("feed", "Nguồn", "Feed"),
    ("amount", "Số tiền", "Amount"),
    ("bank_reference", "Mã giao dịch ngân hàng", "Bank reference"),
    ("transfer_text", "Nội dung chuyển khoản", "Transfer text"),
    ("raw_payload", "Dữ liệu gốc", "Raw payload"),
    ("stage", "Giai đoạn", "Stage"),
    ("progress", "Tiến độ", "Progress"),
    ("drive_link", "Thư mục Drive", "Drive folder"),
    ("last_error", "Lỗi gần nhất", "Last error"),
    ("actions", "Thao tác", "Actions"),
    ("resend", "Gửi lại email", "Resend email"),
    ("retry", "Thử lại", "Retry"),
    ("send_again", "Gửi lại yêu cầu xử lý", "Send its stage again"),
    ("move_access", "Chuyển quyền truy cập", "Move access"),
    ("move_to", "Địa chỉ Google mới", "New Google address"),
    ("refund", "Hoàn tiền", "Refund"),
    ("refund_reason", "Lý do", "Reason"),
    ("refund_confirm", "Xác nhận hoàn tiền", "Confirm the refund"),
    (
        "refund_explain",
        "Đơn sẽ chuyển sang đã hoàn tiền; người mua mất quyền truy cập các thư mục Drive dưới đây. Tiền được hoàn qua ngân hàng của bạn: coursedrop không giữ tiền.",
        "The order becomes refunded and the buyer loses access to the Drive folders below. Send the money back from your bank: coursedrop never holds it.",
    ),
    ("refund_amount", "Số tiền đã nhận sẽ hoàn", "Amount received, to give back"),
    ("when", "Lúc", "When"),
    ("who", "Ai", "Who"),
    ("what", "Việc", "What"),
    ("detail", "Chi tiết", "Detail"),
    ("attach", "Gắn vào đơn", "Attach to order"),
    ("mark_handled", "Đánh dấu đã xử lý", "Mark handled"),
    ("note", "Ghi chú", "Note"),
    ("release", "Tính là giao dịch riêng", "Count it (release)"),
    ("drop", "Bỏ (trùng)", "Drop (duplicate)"),
    ("no_code", "Không có mã đơn", "No order code"),
    ("unknown_code", "Mã đơn không tồn tại", "Unknown order code"),
    ("reason", "Lý do", "Reason"),
    ("nothing", "Không có gì.", "Nothing here."),
    ("add_course", "Thêm khoá học", "Add a course"),
    ("slug", "Mã khoá học", "Slug"),
    ("title", "Tên", "Title"),
    ("price", "Giá (VND)", "Price (VND)"),
    ("source", "Nguồn (s3://… hoặc thư mục Drive)", "Source (s3://… or a Drive folder)"),
    ("mode", "Cách giao", "Delivery"),
    ("active", "Đang bán", "On sale"),
    ("save", "Lưu", "Save"),
    ("check_and_save", "Kiểm tra và lưu", "Check and save"),
    ("add", "Thêm", "Add"),
    ("put_on_sale", "Mở bán", "Put on sale"),
    ("take_off_sale", "Ngừng bán", "Take off sale"),
    ("add_coupon", "Thêm mã giảm giá", "Add a coupon"),
    ("percent_off", "Giảm %", "Percent off"),
    ("amount_off", "Giảm (VND)", "Amount off (VND)"),
    ("max_uses", "Số lần dùng tối đa", "Most uses"),
    ("uses_left", "Còn lại", "Uses left"),
    ("valid_until", "Hết hạn (YYYY-MM-DD)", "Until (YYYY-MM-DD)"),
    ("disable", "Tắt", "Disable"),
    ("year", "Năm", "Year"),
    ("month", "Tháng", "Month"),
    ("gross", "Doanh thu", "Gross"),
    ("refunds", "Hoàn tiền", "Refunds"),
    ("net", "Doanh thu thuần", "Net"),
    ("sold", "Đã bán", "Sold"),
    (
        "revenue_note",
        "Doanh thu tính theo tháng thanh toán (giờ Việt Nam), giá sau giảm giá; khoản hoàn tiền trừ vào tháng hoàn. Dùng cho khai thuế doanh thu thực tế của hộ kinh doanh.",
        "Revenue by the month of payment (Vietnam time), at the price after coupons; refunds are netted in the month they were made. For a household business's declaration of actual revenue.",
    ),
    ("error", "Không thực hiện được", "Could not do that"),
    (
        "err_forbidden",
        "Vai trò của bạn không được làm việc này; hãy nhờ chủ cửa hàng.",
        "Your role may not do this; ask the shop's owner.",
    ),
    ("err_not_found", "Không tìm thấy.", "Not found."),
    ("err_refused", "Việc này không làm được với dữ liệu hiện tại.", "This cannot be done as things stand."),
    ("err_invalid_input", "Có ô chưa đúng; hãy sửa rồi thử lại.", "A field is not right; correct it and try again."),
    (
        "err_too_many_requests",
        "Quá nhiều yêu cầu; hãy thử lại sau 15 phút.",
        "Too many requests; try again in 15 minutes.",
    ),
    (
        "err_csrf",
        "Biểu mẫu đã cũ; hãy tải lại trang và thử lại.",
        "The form is out of date; reload the page and try again.",
    ),
    (
        "err_cross_site",
        "Yêu cầu không đến từ các trang của trang quản trị.",
        "The request did not come from the console's pages.",
    ),
    ("err_signed_out", "Phiên đăng nhập đã hết; hãy đăng nhập lại.", "Your session has ended; sign in again."),
    (
        "err_conflict",
        "Đã có người thay đổi mục này trước; hãy tải lại trang.",
        "Someone changed this first; reload the page.",
    ),
    (
        "err_drive",
        "Google Drive chưa phản hồi; hãy thử lại sau ít phút.",
        "Google Drive did not answer; try again in a few minutes.",
    ),
    (
        "err_mail",
        "Chưa gửi được email; hãy thử lại sau ít phút.",
        "The email could not be sent; try again in a few minutes.",
    ),
    ("err_source", "Nguồn khoá học có vấn đề.", "The course source has a problem."),
    (
        "err_database",
        "Có lỗi phía hệ thống; đã được ghi lại, hãy thử lại sau.",
        "Something went wrong on our side; it is logged, try again shortly.",
    ),
    ("back", "Quay lại", "Back"),
    ("role", "Vai trò", "Role"),
    ("owner_only", "Chỉ chủ cửa hàng", "Owner only"),
    ("language", "English", "Tiếng Việt"),
    ("signed_in_as", "Đăng nhập:", "Signed in:"),
    ("view", "Xem", "View"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    /// The `lang` cookie, else the browser's first language, else Vietnamese.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(v) = crate::session::cookie(headers, "cd_lang") {
            return if v == "en" { Lang::En } else { Lang::Vi };
        }
        let first = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .unwrap_or("vi");
        if first.trim().to_ascii_lowercase().starts_with("en") { Lang::En } else { Lang::Vi }
    }
}

/// The word for `key`, or the key itself (a missing word shows, it does not break the page).
pub fn word(lang: Lang, key: &str) -> String {
    WORDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, vi, en)| if lang == Lang::En { *en } else { *vi })
        .unwrap_or(key)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_once_and_both_languages_written() {
        for (i, (k, vi, en)) in WORDS.iter().enumerate() {
            assert!(!WORDS[..i].iter().any(|(other, _, _)| other == k), "{k} twice");
            assert!(!vi.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(word(Lang::En, "orders"), "Orders");
        assert_eq!(word(Lang::Vi, "orders"), "Đơn hàng");
        assert_eq!(word(Lang::Vi, "no-such-key"), "no-such-key");
    }
}
