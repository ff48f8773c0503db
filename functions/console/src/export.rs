//! Files staff download: the orders list as CSV, the revenue report as CSV and as an Excel
//! workbook (written by the csv and rust_xlsxwriter crates). Amounts are whole VND; times are
//! Vietnam time, and the headers say so.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use coursedrop::app::console::orders::OrderRow;
use coursedrop::app::console::revenue::RevenueReport;
use coursedrop::domain::{Status, vietnam_time};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

pub const CSV: &str = "text/csv; charset=utf-8";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

pub fn download(name: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// A CSV file as a download, or the failure to write it.
pub fn csv_download(name: &str, written: Result<Vec<u8>, csv::Error>) -> Response {
    match written {
        Ok(body) => download(name, CSV, body),
        Err(e) => {
            tracing::error!(error = %e, "writing a CSV file");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "the file could not be written; the error is in the log")
                .into_response()
        }
    }
}

/// A UTF-8 byte-order mark first, so a spreadsheet opened by double-click reads Vietnamese.
/// Flexible: the revenue file's two tables have different widths.
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().flexible(true).from_writer(b"\xEF\xBB\xBF".to_vec())
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, csv::Error> {
    w.into_inner().map_err(|e| e.into_error().into())
}

/// A cell a spreadsheet will not run: text a buyer typed (an email may begin with `=` or
/// `+`) that starts like a formula gets a leading apostrophe (OWASP's advice for CSV).
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}").into() } else { s.into() }
}

pub fn orders_csv(rows: &[OrderRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv_writer();
    w.write_record([
        "code",
        "status",
        "email",
        "phone",
        "courses",
        "total_vnd",
        "paid_vnd",
        "discount_vnd",
        "coupon",
        "placed_vietnam_time",
        "paid_vietnam_time",
        "attention",
    ])?;
    for r in rows {
        w.write_record([
            r.code.as_str(),
            r.status.as_str(),
            &cell(&r.email),
            &cell(r.phone.as_deref().unwrap_or_default()),
            r.courses.as_deref().unwrap_or_default(),
            &r.total_vnd.to_string(),
            &r.paid_vnd.to_string(),
            &r.discount_vnd.to_string(),
            r.coupon.as_deref().unwrap_or_default(),
            &vietnam_time(r.created_at),
            &r.paid_at.map(vietnam_time).unwrap_or_default(),
            &cell(r.attention.as_deref().unwrap_or_default()),
        ])?;
    }
    finish(w)
}

pub fn revenue_csv(r: &RevenueReport) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv_writer();
    w.write_record(["year", "month", "orders", "gross_vnd", "refunds_vnd", "net_vnd"])?;
    for m in &r.months {
        let s = &m.sums;
        w.write_record([
            r.year.to_string(),
            m.month.to_string(),
            s.orders.to_string(),
            s.gross_vnd.to_string(),
            s.refunds_vnd.to_string(),
            s.net_vnd.to_string(),
        ])?;
    }
    let t = &r.total;
    w.write_record([
        r.year.to_string(),
        "total".into(),
        t.orders.to_string(),
        t.gross_vnd.to_string(),
        t.refunds_vnd.to_string(),
        t.net_vnd.to_string(),
    ])?;
    w.write_record([""])?;
    w.write_record(["course", "title", "sold", "refunded", "gross_vnd", "refunds_vnd", "net_vnd"])?;
    for c in &r.courses {
        w.write_record([
            c.course.clone(),
            cell(&c.title).into_owned(),
            c.sold.to_string(),
            c.refunded.to_string(),
            c.gross_vnd.to_string(),
            c.refunds_vnd.to_string(),
            c.net_vnd.to_string(),
        ])?;
    }
    finish(w)
}

/// The revenue report as a workbook: a sheet of months and a sheet of courses, amounts as
/// numbers with a thousands separator so the accountant can sum them.
pub fn revenue_xlsx(r: &RevenueReport) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("#,##0");
    let months = book.add_worksheet().set_name("Doanh thu theo tháng")?;
    for (col, h) in [
        "Năm / Year",
        "Tháng / Month",
        "Đơn / Orders",
        "Doanh thu / Gross (VND)",
        "Hoàn tiền / Refunds (VND)",
        "Thuần / Net (VND)",
    ]
    .iter()
    .enumerate()
    {
        months.write_string_with_format(0, col as u16, *h, &bold)?;
    }
    let mut row = 1;
    for m in &r.months {
        months.write_number(row, 0, r.year)?;
        months.write_number(row, 1, m.month)?;
        months.write_number(row, 2, m.sums.orders as f64)?;
        months.write_number_with_format(row, 3, m.sums.gross_vnd as f64, &money)?;
        months.write_number_with_format(row, 4, m.sums.refunds_vnd as f64, &money)?;
        months.write_number_with_format(row, 5, m.sums.net_vnd as f64, &money)?;
        row += 1;
    }
    months.write_string_with_format(row, 0, "Tổng / Total", &bold)?;
    months.write_number(row, 2, r.total.orders as f64)?;
    months.write_number_with_format(row, 3, r.total.gross_vnd as f64, &money)?;
    months.write_number_with_format(row, 4, r.total.refunds_vnd as f64, &money)?;
    months.write_number_with_format(row, 5, r.total.net_vnd as f64, &money)?;
    months.set_column_width(3, 22)?;
    months.set_column_width(4, 24)?;
    months.set_column_width(5, 20)?;

    let courses = book.add_worksheet().set_name("Theo khoá học")?;
    for (col, h) in [
        "Mã / Slug",
        "Tên / Title",
        "Đã bán / Sold",
        "Hoàn / Refunded",
        "Doanh thu / Gross (VND)",
        "Hoàn tiền / Refunds (VND)",
        "Thuần / Net (VND)",
    ]
    .iter()
    .enumerate()
    {
        courses.write_string_with_format(0, col as u16, *h, &bold)?;
    }
    for (i, c) in r.courses.iter().enumerate() {
        let row = i as u32 + 1;
        courses.write_string(row, 0, &c.course)?;
        courses.write_string(row, 1, &c.title)?;
        courses.write_number(row, 2, c.sold as f64)?;
        courses.write_number(row, 3, c.refunded as f64)?;
        courses.write_number_with_format(row, 4, c.gross_vnd as f64, &money)?;
        courses.write_number_with_format(row, 5, c.refunds_vnd as f64, &money)?;
        courses.write_number_with_format(row, 6, c.net_vnd as f64, &money)?;
    }
    courses.set_column_width(1, 36)?;
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use coursedrop::app::console::revenue::{CourseRevenue, MonthRevenue, RevenueReport, Sums};

    use super::*;

    #[test]
    fn the_revenue_file_has_a_line_per_month_and_per_course() {
        let sums = |g: i64| Sums { orders: 1, gross_vnd: g, refunds_vnd: 0, net_vnd: g };
        let course = |slug: &str, title: &str| CourseRevenue {
            course: slug.into(),
            title: title.into(),
            sold: 1,
            refunded: 0,
            gross_vnd: 100,
            refunds_vnd: 0,
            net_vnd: 100,
        };
        let r = RevenueReport {
            year: 2026,
            months: (1..=12).map(|month| MonthRevenue { month, sums: sums(100) }).collect(),
            courses: vec![course("a", "Khoá A"), course("b", "=HYPERLINK(\"x\")")],
            total: sums(1200),
        };
        let text = String::from_utf8(revenue_csv(&r).unwrap()).unwrap();
        let lines: Vec<&str> = text.trim_end().lines().collect();
        assert_eq!(lines.len(), 1 + 12 + 1 + 1 + 1 + 2, "{text}");
        assert_eq!(lines[13], "2026,total,1,1200,0,1200");
        assert_eq!(lines[16], "a,Khoá A,1,0,100,0,100");
        assert!(
            lines[17].starts_with("b,\"'=HYPERLINK"),
            "a title that starts like a formula is not one: {}",
            lines[17]
        );
    }
}
