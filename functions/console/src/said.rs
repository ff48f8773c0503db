//! What an action did, in the person's language: the sentence shown once on the next page.

use coursedrop::app::console::actions::{CountedAs, Done, Queued};

use crate::i18n::Lang;

fn queued(lang: Lang, q: Queued) -> &'static str {
    match (lang, q) {
        (_, Queued::Nothing) => "",
        (Lang::En, Queued::Now) => " and queued",
        (Lang::Vi, Queued::Now) => " và đã đưa vào hàng đợi",
        (Lang::En, Queued::Later) => "; the queue takes it within a minute",
        (Lang::Vi, Queued::Later) => "; hàng đợi sẽ nhận trong vòng một phút",
    }
}

pub fn done(lang: Lang, d: &Done) -> String {
    let en = lang == Lang::En;
    match d {
        Done::Retried { item, queued: q } if en => {
            format!("Item {item} went back to the stage it failed in{}.", queued(lang, *q))
        }
        Done::Retried { item, queued: q } => format!("Mục {item} đã được đưa lại vào bước bị lỗi{}.", queued(lang, *q)),
        Done::StageSentAgain { item, queued: q } if en => {
            format!("Item {item}'s stage was sent again{}.", queued(lang, *q))
        }
        Done::StageSentAgain { item, queued: q } => format!("Đã gửi lại yêu cầu xử lý mục {item}{}.", queued(lang, *q)),
        Done::EmailResent { item } if en => format!("Item {item}'s delivery email was sent again."),
        Done::EmailResent { item } => format!("Đã gửi lại email giao khoá học của mục {item}."),
        Done::AccessMoved { courses } if en => format!("The access to {courses} course(s) moved to the new address."),
        Done::AccessMoved { courses } => format!("Đã chuyển quyền truy cập {courses} khoá học sang địa chỉ mới."),
        Done::Refunded { code, courses, permissions, drive_later, queued: q } => {
            let mut s = if en {
                format!(
                    "Order {code} refunded: {courses} course(s) revoked, {permissions} Drive permission(s) removed{}.",
                    queued(lang, *q)
                )
            } else {
                format!(
                    "Đã hoàn tiền đơn {code}: thu hồi {courses} khoá học, gỡ {permissions} quyền Drive{}.",
                    queued(lang, *q)
                )
            };
            if *drive_later > 0 {
                s.push_str(&if en {
                    format!(
                        " Drive did not answer for {drive_later} course(s); their access is taken back when it does."
                    )
                } else {
                    format!(
                        " Drive chưa phản hồi cho {drive_later} khoá học; quyền truy cập sẽ được gỡ khi Drive phản hồi."
                    )
                });
            }
            s
        }
        Done::PaymentCounted { payment, order, counted_as, queued: q } => match (counted_as, en) {
            (CountedAs::Paid, true) => format!("Payment {payment} counted: order {order} is paid{}.", queued(lang, *q)),
            (CountedAs::Paid, false) => {
                format!("Đã tính khoản {payment}: đơn {order} đã thanh toán đủ{}.", queued(lang, *q))
            }
            (CountedAs::Partly, true) => {
                format!("Payment {payment} counted towards order {order}; part of its price is still to come.")
            }
            (CountedAs::Partly, false) => format!("Đã tính khoản {payment} vào đơn {order}; đơn vẫn còn thiếu tiền."),
            (CountedAs::Flagged, true) => format!("Payment {payment} kept on order {order} and flagged for a look."),
            (CountedAs::Flagged, false) => format!("Đã gắn khoản {payment} vào đơn {order} và đánh dấu cần xem."),
        },
        Done::ReleasedWithoutOrder { payment } if en => {
            format!("Payment {payment} released; it matched no order: attach it to one.")
        }
        Done::ReleasedWithoutOrder { payment } => {
            format!("Đã tính khoản {payment} là giao dịch riêng; chưa khớp đơn nào: hãy gắn vào đơn.")
        }
        Done::Dropped { payment } if en => {
            format!("Payment {payment} dropped as a duplicate: it stays on record and never counts.")
        }
        Done::Dropped { payment } => {
            format!("Đã bỏ khoản {payment} vì trùng: vẫn được lưu nhưng không bao giờ được tính.")
        }
        Done::Handled { payment } if en => format!("Payment {payment} marked handled."),
        Done::Handled { payment } => format!("Đã đánh dấu khoản {payment} là đã xử lý."),
        Done::CourseAdded { slug, files } if en => {
            format!("Course {slug} added: {files} file(s) checked at the source.")
        }
        Done::CourseAdded { slug, files } => format!("Đã thêm khoá học {slug}: đã kiểm tra {files} tệp ở nguồn."),
        Done::CourseSaved { slug } if en => format!("Course {slug} saved."),
        Done::CourseSaved { slug } => format!("Đã lưu khoá học {slug}."),
        Done::CourseMoved { slug, source, files } if en => {
            format!("Course {slug} now delivers from {source}: {files} file(s) checked.")
        }
        Done::CourseMoved { slug, source, files } => {
            format!("Khoá học {slug} giờ giao từ {source}: đã kiểm tra {files} tệp.")
        }
        Done::OnSale { slug, active: true } if en => format!("Course {slug} is on sale."),
        Done::OnSale { slug, active: true } => format!("Khoá học {slug} đang được bán."),
        Done::OnSale { slug, active: false } if en => format!("Course {slug} is off sale."),
        Done::OnSale { slug, active: false } => format!("Khoá học {slug} đã ngừng bán."),
        Done::CouponAdded { code } if en => format!("Coupon {code} added."),
        Done::CouponAdded { code } => format!("Đã thêm mã giảm giá {code}."),
        Done::CouponDisabled { code } if en => format!("Coupon {code} disabled."),
        Done::CouponDisabled { code } => format!("Đã tắt mã giảm giá {code}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_says_it_in_its_own_words() {
        let d = Done::Refunded {
            code: "CD12345678".into(),
            courses: 2,
            permissions: 2,
            drive_later: 1,
            queued: Queued::Now,
        };
        let en = done(Lang::En, &d);
        let vi = done(Lang::Vi, &d);
        assert!(en.starts_with("Order CD12345678 refunded") && en.contains("Drive did not answer"), "{en}");
        assert!(vi.starts_with("Đã hoàn tiền đơn CD12345678") && vi.contains("Drive chưa phản hồi"), "{vi}");
    }
}
