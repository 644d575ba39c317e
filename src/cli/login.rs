//! `login`, `logout` and `whoami`. A login checks the URL answers as a
//! provisionerd server, gets a session token (password or `--token`),
//! checks it, and stores URL and token (see [`super::session`]). On a
//! server with no user yet it offers to create the first one, as
//! `coder login` does.

use std::io::Read;

use anyhow::{bail, Context};

use super::args::{Format, LoginArgs, OutputArgs};
use super::output::{confirm, interactive, json, prompt};
use super::{session, Usage};
use crate::sdk::{Client, CreateUserRequest, LoginRequest};

pub async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let Some(url) = a.url.clone().or(session::url()?) else {
        return Err(Usage("give the server's URL: provisionerd login <url>".into()).into());
    };
    let url = normalize(&url);
    let anon = Client::anonymous(session::http()?, &url);
    anon.build_info()
        .await
        .with_context(|| format!("cannot reach a provisionerd server at {url}"))?;
    let token = match &a.token {
        Some(t) => t.clone(),
        None => password_login(&anon, &a).await?,
    };
    let me = anon.with_token(&token).user("me").await.context("the server refused the session")?;
    session::save(&url, &token)?;
    say!("logged in to {url} as {} <{}>", me.username, me.email);
    Ok(())
}

/// `example.com:3000` means `http://example.com:3000`; no trailing slash.
fn normalize(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

async fn password_login(c: &Client, a: &LoginArgs) -> anyhow::Result<String> {
    let tty = interactive();
    let email = match &a.email {
        Some(e) => e.clone(),
        None if tty => prompt("Email:")?,
        None => {
            let msg = "give --email with --password-stdin, or --token, without a terminal";
            return Err(Usage(msg.into()).into());
        }
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    } else if tty {
        // Read from the terminal with echo off: the password never shows.
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        let msg = "give --password-stdin (or --token) to log in without a terminal";
        return Err(Usage(msg.into()).into());
    };
    if password.is_empty() {
        return Err(Usage("the password is empty".into()).into());
    }
    let req = LoginRequest { email: email.clone(), password: password.clone() };
    match c.login_user(&req).await {
        Ok(r) => return Ok(r.session_token),
        Err(e) if e.status() == Some(401) && !c.has_first_user().await? => {}
        Err(e) => return Err(e).context("login failed"),
    }
    // No user at all yet: offer to create the first one (the owner).
    if !a.first_user {
        if !tty {
            bail!(
                "the server has no user yet: add --first-user to create the first one \
                 (the owner) with this email and password"
            );
        }
        confirm(false, "This server has no user yet. Create the first user (owner) with this email and password?")?;
    }
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            let default = username_from(&email);
            if tty && !a.first_user {
                let typed = prompt(&format!("Username [{default}]:"))?;
                if typed.is_empty() {
                    default
                } else {
                    typed
                }
            } else {
                default
            }
        }
    };
    let first = CreateUserRequest { username, email, password, name: String::new() };
    c.create_first_user_when_up(&first).await.context("cannot create the first user")?;
    eprintln!("created the first user {} <{}>", first.username, first.email);
    Ok(c.login_user(&req).await.context("login failed")?.session_token)
}

/// A username from an email's local part: lower-case letters, digits and
/// dashes.
fn username_from(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let name: String =
        local.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        "admin".into()
    } else {
        name
    }
}

pub async fn logout() -> anyhow::Result<()> {
    let Ok(c) = session::client() else {
        say!("not logged in");
        return Ok(());
    };
    // A session the server already forgot is still forgotten here.
    if let Err(e) = c.logout().await {
        if e.status() != Some(401) {
            return Err(e).context("cannot log out on the server");
        }
    }
    session::forget()?;
    say!("logged out of {}", c.base());
    Ok(())
}

pub async fn whoami(o: OutputArgs) -> anyhow::Result<()> {
    let c = session::client()?;
    let me = c.user("me").await.context("cannot read your user")?;
    if o.output == Format::Json {
        return json(&me);
    }
    let roles: Vec<&str> = me.roles.iter().map(|r| r.name.as_str()).collect();
    say!("{} <{}> on {}", me.username, me.email, c.base());
    if !roles.is_empty() {
        say!("roles: {}", roles.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_come_from_emails() {
        assert_eq!(username_from("Jane.Doe@example.com"), "jane-doe");
        assert_eq!(username_from("@x"), "admin");
    }

    #[test]
    fn urls_get_a_scheme_and_lose_the_slash() {
        assert_eq!(normalize("127.0.0.1:3000/"), "http://127.0.0.1:3000");
        assert_eq!(normalize("https://a.b"), "https://a.b");
    }
}
