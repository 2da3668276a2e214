//! Signing in and out, patient self-registration, the account page and password change.
//! In Keycloak mode sign-in is Keycloak's page (authorization code + PKCE) and the callback
//! here finishes it.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FormState, local_path};
use crate::WebState;
use crate::api::{ApiFailure, Problem};
use crate::guard::{NewSession, Signed, Visitor, audience::Everyone};
use crate::model::{AppGrant, FeedStatus};
use crate::page::{Layout, PageResult, WebError, render, render_status, see_other};
use crate::session::{PendingLogin, Role, Session, Tokens, User};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/", get(start))
        .route("/login", get(login_page).post(login))
        .route("/auth/callback", get(keycloak_callback))
        .route("/logout", post(logout))
        .route("/register", get(register_page).post(register))
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/apps/{id}/revoke", post(revoke_app))
        .route("/account/calendar", post(make_feed))
        .route("/account/calendar/stop", post(stop_feed))
}

async fn start(Visitor(session): Visitor) -> Response {
    match &session.user {
        Some(user) => see_other(user.role.home()),
        None => see_other("/login"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    f: FormState,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_page(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(next): Query<Next>,
) -> Response {
    let next = local_path(next.next.as_deref()).unwrap_or_default();
    if let Some(user) = &session.user {
        return see_other(if next.is_empty() {
            user.role.home()
        } else {
            &next
        });
    }
    if let Some(keycloak) = &state.keycloak {
        let pending = PendingLogin {
            state: state.sessions.secret(),
            verifier: state.sessions.secret(),
            next,
        };
        let target = keycloak.authorize(&pending.state, &pending.verifier);
        session.set_pending(pending);
        return see_other(&target);
    }
    render(&LoginPage {
        l: Layout::new(&session, "Sign in", "/login"),
        f: FormState::default().with("next", next),
    })
}

async fn login(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut f = FormState::new(pairs);
    f.required("email");
    f.required("password");
    if !f.has_errors() {
        match state
            .gateway
            .password_grant(f.v("email"), f.raw("password"))
            .await
        {
            Ok(tokens) => match signed_in(&state, &session, tokens, f.opt("next")).await {
                Ok(response) => return response,
                Err(failure) => f.general = Some(failure),
            },
            Err(ApiFailure::Rejected(problem)) => f.general = Some(login_refusal(&problem)),
            Err(_) => f.general = Some(UNAVAILABLE.to_owned()),
        }
    }
    f.forget("password");
    render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &LoginPage {
            l: Layout::new(&session, "Sign in", "/login"),
            f,
        },
    )
}

const UNAVAILABLE: &str = "The clinic's system is not answering. Please try again in a moment.";

fn login_refusal(problem: &Problem) -> String {
    match problem.code.as_str() {
        "too_many_login_attempts" => {
            "Too many failed attempts for this account. Please wait a few minutes.".to_owned()
        }
        "invalid_grant" => "The email or password is not right.".to_owned(),
        _ => problem.detail.clone(),
    }
}

#[derive(Deserialize)]
struct Me {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
    role: String,
}

/// Turns fresh tokens into a signed-in session (a new session id) and sends the browser
/// on. The error is a message for the sign-in page.
async fn signed_in(
    state: &WebState,
    previous: &Session,
    tokens: Tokens,
    next: Option<&str>,
) -> Result<Response, String> {
    let me: Me = state
        .gateway
        .get_with_token(&tokens.access, "/api/users/me")
        .await
        .map_err(|_| UNAVAILABLE.to_owned())?;
    let Some(role) = Role::parse(&me.role) else {
        return Err("This account has no role in the clinic.".to_owned());
    };
    let user = User {
        id: me.id,
        email: me.email,
        name: format!("{} {}", me.first_name, me.last_name),
        role,
    };
    let target = local_path(next).unwrap_or_else(|| role.home().to_owned());
    let session = state
        .sessions
        .sign_in(previous, user, tokens)
        .await
        .map_err(|err| {
            tracing::error!(error = %format!("{err:#}"), "storing the signed-in session failed");
            UNAVAILABLE.to_owned()
        })?;
    let mut response = see_other(&target);
    response.extensions_mut().insert(NewSession(session));
    Ok(response)
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn keycloak_callback(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(callback): Query<Callback>,
) -> PageResult {
    let Some(keycloak) = &state.keycloak else {
        return Err(WebError::NotFound);
    };
    let pending = session.take_pending();
    let refused = |detail: &str| WebError::Refused {
        status: StatusCode::BAD_REQUEST,
        detail: detail.to_owned(),
    };
    let Some(pending) = pending else {
        return Err(refused(
            "No sign-in was in progress in this browser. Please sign in again.",
        ));
    };
    if let Some(error) = callback.error {
        tracing::info!(%error, "Keycloak ended the sign-in");
        return Err(refused("Sign-in was cancelled or refused."));
    }
    let (Some(code), Some(returned)) = (callback.code, callback.state) else {
        return Err(refused("The sign-in answer was incomplete."));
    };
    if !polyclinic_http::secrets_match(&returned, &pending.state) {
        return Err(refused(
            "The sign-in answer does not belong to this browser.",
        ));
    }
    let tokens = state
        .gateway
        .code_grant(&code, &pending.verifier, &keycloak.redirect_uri)
        .await
        .map_err(|failure| match failure {
            ApiFailure::Rejected(_) => refused("Keycloak did not accept the sign-in."),
            other => WebError::from_api(other, "/"),
        })?;
    let next = Some(pending.next.as_str()).filter(|next| !next.is_empty());
    signed_in(&state, &session, tokens, next)
        .await
        .map_err(WebError::Unavailable)
}

async fn logout(State(state): State<WebState>, Visitor(session): Visitor) -> Response {
    // Ended on every replica at once (the row is gone), and the login with it: the tokens
    // revoked are the row's last ones, which another request may have refreshed since.
    session.tokens.lock().await.take();
    let restarted = match state.sessions.end(&session.id).await {
        Ok(last) => {
            if let Some(tokens) = last {
                state.gateway.revoke(&tokens).await;
            }
            state.sessions.start().await
        }
        Err(err) => Err(err),
    };
    let fresh = match restarted {
        Ok(fresh) => fresh,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "ending the session failed");
            return crate::page::plain_error(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    fresh.set_flash("ok", "You are signed out.");
    let target = match &state.keycloak {
        Some(keycloak) => keycloak.logout_url(),
        None => "/login".to_owned(),
    };
    let mut response = see_other(&target);
    response.extensions_mut().insert(NewSession(fresh));
    response
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    l: Layout,
    f: FormState,
}

async fn register_page(State(state): State<WebState>, Visitor(session): Visitor) -> Response {
    if state.keycloak.is_some() {
        // Keycloak's own page offers registration when the realm allows it.
        return see_other("/login");
    }
    render(&RegisterPage {
        l: Layout::new(&session, "Register", "/register"),
        f: FormState::default(),
    })
}

async fn register(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut f = FormState::new(pairs);
    for name in ["first_name", "last_name", "email", "password"] {
        f.required(name);
    }
    if !f.has_errors() {
        let mut body = json!({
            "first_name": f.v("first_name"),
            "last_name": f.v("last_name"),
            "email": f.v("email"),
            "password": f.raw("password"),
        });
        for name in ["date_of_birth", "phone"] {
            if let Some(value) = f.opt(name) {
                body[name] = Value::from(value);
            }
        }
        let allergies: Vec<&str> = f
            .v("allergies")
            .split(',')
            .map(str::trim)
            .filter(|allergy| !allergy.is_empty())
            .collect();
        body["allergies"] = json!(allergies);
        match state
            .gateway
            .post_public("/api/users/patients", &body)
            .await
        {
            Ok(_) => match state
                .gateway
                .password_grant(f.v("email"), f.raw("password"))
                .await
            {
                Ok(tokens) => {
                    if let Ok(response) =
                        signed_in(&state, &session, tokens, Some("/doctors")).await
                    {
                        return response;
                    }
                    session.set_flash("ok", "Your account is ready. Please sign in.");
                    return see_other("/login");
                }
                Err(_) => {
                    session.set_flash("ok", "Your account is ready. Please sign in.");
                    return see_other("/login");
                }
            },
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "email_taken" => f.error(
                    "email",
                    "An account with this email exists. Sign in instead.",
                ),
                _ => f.absorb(&problem, &[("username", "email")]),
            },
            Err(_) => f.general = Some(UNAVAILABLE.to_owned()),
        }
    }
    f.forget("password");
    render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &RegisterPage {
            l: Layout::new(&session, "Register", "/register"),
            f,
        },
    )
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    l: Layout,
    f: FormState,
    name: String,
    email: String,
    role: &'static str,
    /// In Keycloak mode passwords are Keycloak's: its account console, not a form here.
    password_elsewhere: Option<String>,
    /// The SMART apps the person allowed (Keycloak keeps its own, in its console).
    apps: Vec<AppGrant>,
    /// Whether the person's calendar feed exists (`None` while it cannot be asked).
    feed: Option<FeedStatus>,
    /// A feed's URL just made, shown this once, and the same as a `webcal:` link.
    new_feed: Option<(String, String)>,
}

async fn account(
    state: &WebState,
    session: &Session,
    user: &User,
    f: FormState,
) -> Result<AccountPage, WebError> {
    let apps = if state.keycloak.is_some() {
        Vec::new()
    } else {
        state
            .gateway
            .get(session, "/api/smart/grants/mine")
            .await
            .map_err(|failure| WebError::from_api(failure, "/account"))?
    };
    // The rest of the page does not depend on the calendar: without it, the section waits.
    let feed = state.gateway.get(session, "/api/calendar/feed").await.ok();
    Ok(AccountPage {
        apps,
        feed,
        new_feed: None,
        l: Layout::new(session, "Account", "/account"),
        f,
        name: user.name.clone(),
        email: user.email.clone(),
        role: user.role.label(),
        password_elsewhere: state
            .keycloak
            .as_ref()
            .map(|keycloak| keycloak.account_url()),
    })
}

async fn account_page(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Everyone>,
) -> PageResult {
    Ok(render(
        &account(&state, &session, &user, FormState::default()).await?,
    ))
}

/// Makes the person's calendar feed (a new one, whose URL replaces the old), and shows its
/// URL this once.
async fn make_feed(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Everyone>,
) -> PageResult {
    let made = match state
        .gateway
        .post(&session, "/api/calendar/feed", &json!({}))
        .await
    {
        Ok(made) => made,
        Err(ApiFailure::Rejected(problem)) => {
            session.set_flash("error", &problem.detail);
            return Ok(see_other("/account"));
        }
        Err(other) => return Err(WebError::from_api(other, "/account")),
    };
    let mut page = account(&state, &session, &user, FormState::default()).await?;
    page.new_feed = made["url"].as_str().map(|url| {
        let webcal = format!(
            "webcal://{}",
            url.split_once("://").map_or(url, |(_, rest)| rest)
        );
        (url.to_owned(), webcal)
    });
    Ok(render(&page))
}

/// Ends the person's calendar feed: its URL stops working.
async fn stop_feed(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Everyone>,
) -> PageResult {
    match state.gateway.delete(&session, "/api/calendar/feed").await {
        Ok(_) => session.set_flash(
            "ok",
            "Your calendar feed is stopped; its address no longer works.",
        ),
        Err(ApiFailure::Rejected(problem)) => session.set_flash("error", &problem.detail),
        Err(other) => return Err(WebError::from_api(other, "/account")),
    }
    Ok(see_other("/account"))
}

/// Withdraws an app's access: its logins end.
async fn revoke_app(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Everyone>,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
) -> PageResult {
    match state
        .gateway
        .delete(&session, &format!("/api/smart/grants/{id}"))
        .await
    {
        Ok(_) => session.set_flash("ok", "The app's access is withdrawn."),
        Err(ApiFailure::Rejected(problem)) => session.set_flash("error", &problem.detail),
        Err(other) => return Err(WebError::from_api(other, "/account")),
    }
    Ok(see_other("/account"))
}

async fn change_password(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Everyone>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    account(&state, &session, &user, FormState::default()).await?;
    f.required("current_password");
    if !f.required("new_password") && f.raw("new_password") != f.raw("confirm_password") {
        f.error("confirm_password", "The two new passwords differ.");
    }
    if !f.has_errors() {
        let body = json!({
            "current_password": f.raw("current_password"),
            "new_password": f.raw("new_password"),
        });
        match state
            .gateway
            .post(&session, "/api/users/me/password", &body)
            .await
        {
            Ok(_) => {
                session.set_flash("ok", "Your password is changed. Other sign-ins have ended.");
                return Ok(see_other("/account"));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "current_password_incorrect" => {
                    f.error("current_password", "The current password is not right.")
                }
                _ => f.absorb(&problem, &[]),
            },
            Err(other) => return Err(WebError::from_api(other, "/account")),
        }
    }
    for name in ["current_password", "new_password", "confirm_password"] {
        f.forget(name);
    }
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &account(&state, &session, &user, f).await?,
    )
    .into_response())
}
