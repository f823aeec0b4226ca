//! The start page: what niji is and the screens this visitor may open; the language switch.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::chrome::{Chrome, Visitor};
use crate::i18n::Lang;

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    c: Chrome,
}

pub(crate) async fn page(v: Visitor) -> HomePage {
    HomePage { c: v.chrome }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Switch {
    to: String,
    back: Option<String>,
}

/// Sets the language cookie and returns to the page (a preference of the browser's, not a
/// change of the platform's state).
pub(crate) async fn switch_language(Query(s): Query<Switch>) -> Response {
    let lang = Lang::parse(&s.to).unwrap_or(Lang::Ja);
    let back = super::safe_next(s.back.as_deref().unwrap_or("/")).to_string();
    (
        [(
            header::SET_COOKIE,
            format!(
                "{}={}; Path=/; SameSite=Strict; Max-Age=31536000",
                crate::cookies::LANG,
                lang.as_str()
            ),
        )],
        super::see_other(&back),
    )
        .into_response()
}
