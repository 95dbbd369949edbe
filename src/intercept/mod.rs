//! Statements the proxy answers itself: impersonation in every platform's dialect. Recognised
//! on the raw text with the lexer, so any case, quoting or comment placement is understood the
//! same way, and nothing here ever reaches the cluster.

use crate::config::Config;
use crate::rewrite::Token;

/// An impersonation statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intercept {
    /// Start (`Some`) or end (`None`) impersonating, or take the name from a bound parameter.
    Impersonate { target: Target, tag: &'static str },
    /// Report the impersonated and the login user.
    Show,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(String),
    Nobody,
    /// `$n` (1-based) of the extended protocol's Bind.
    Parameter(usize),
}

impl Intercept {
    /// The CommandComplete tag PostgreSQL would answer the statement with.
    pub fn tag(&self) -> &'static str {
        match self {
            Intercept::Impersonate { tag, .. } => tag,
            Intercept::Show => "SHOW",
        }
    }

    /// How many parameters the statement takes (for ParameterDescription).
    pub fn parameters(&self) -> usize {
        match self {
            Intercept::Impersonate {
                target: Target::Parameter(n),
                ..
            } => *n,
            _ => 0,
        }
    }
}

/// A refused impersonation statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// The catalog permission that allows impersonation.
pub const IMPERSONATE_USER: &str = "IMPERSONATE_USER";

/// Decides whether `login`, now acting as `current`, may switch to `target` (`None` ends
/// impersonation). Permission is always the login user's own.
pub fn authorize(
    config: &Config,
    login: &str,
    first: Option<&str>,
    target: Option<&str>,
) -> Result<(), Refusal> {
    let rules = &config.impersonation;
    if rules.single_user_per_session {
        if let Some(first) = first {
            if target != Some(first) {
                return Err(Refusal {
                    code: "42501",
                    message: format!(
                        "this session impersonates \"{first}\" and impersonation.single_user_per_session forbids switching or ending it; open a new connection"
                    ),
                });
            }
        }
    }
    let Some(target) = target else {
        return Ok(());
    };
    let user = config.user(login);
    let permitted = user.is_some_and(|u| {
        u.permissions
            .iter()
            .any(|p| p.eq_ignore_ascii_case(IMPERSONATE_USER))
            || rules
                .group
                .as_ref()
                .is_some_and(|g| u.groups.iter().any(|ug| ug == g))
    });
    let listed = rules
        .allowed_impersonators
        .as_ref()
        .is_none_or(|list| list.iter().any(|name| name == login));
    if !(permitted && listed) {
        return Err(Refusal {
            code: "42501",
            message: format!("user \"{login}\" is not allowed to impersonate other users"),
        });
    }
    if config.user(target).is_none() {
        return Err(Refusal {
            code: "42704",
            message: format!(
                "cannot impersonate \"{target}\": no such user in the redveil catalog"
            ),
        });
    }
    Ok(())
}

/// Column names of the one-row answer to the SHOW forms.
pub const SHOW_COLUMNS: [&str; 2] = ["immuta_user", "login_user"];

/// Recognises one statement; `None` for everything the proxy does not answer itself.
pub fn classify(statement: &str) -> Option<Intercept> {
    // Runs on every simple query: most are decided by their first word, without lexing on.
    match crate::rewrite::tokens(statement).next()? {
        Token::Word(w)
            if ["call", "set", "reset", "show"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)) => {}
        _ => return None,
    }
    let toks: Vec<Token<'_>> = crate::rewrite::tokens(statement).collect();
    let mut at = Cursor { toks: &toks, i: 0 };
    match at.word()?.as_str() {
        "call" => {
            let name = at.dotted_name()?;
            if name != ["immuta_procedures", "impersonate_user"] {
                return None;
            }
            at.symbol('(')?;
            let target = at.target()?;
            at.skip_cast();
            at.symbol(')')?;
            at.end()?;
            Some(Intercept::Impersonate {
                target,
                tag: "CALL",
            })
        }
        "set" => {
            at.optional_word("session");
            let name = at.dotted_name()?;
            if !is_impersonation_setting(&name) {
                return None;
            }
            if !at.optional_symbol('=') && !at.optional_word("to") {
                return None;
            }
            // Databricks ends impersonation with an empty assignment.
            let target = if at.is_end() {
                Target::Nobody
            } else {
                at.target()?
            };
            at.end()?;
            let target = match target {
                Target::User(name) if name.is_empty() || name.eq_ignore_ascii_case("default") => {
                    Target::Nobody
                }
                other => other,
            };
            Some(Intercept::Impersonate { target, tag: "SET" })
        }
        "reset" => {
            at.optional_word("session");
            let name = at.dotted_name()?;
            at.end()?;
            is_impersonation_setting(&name).then_some(Intercept::Impersonate {
                target: Target::Nobody,
                tag: "RESET",
            })
        }
        "show" => {
            if at.optional_word("session") {
                at.optional_word("like").then_some(())?;
                let pattern = at.literal()?;
                at.end()?;
                let name: Vec<String> = pattern.split('.').map(str::to_ascii_lowercase).collect();
                return is_impersonation_setting(&name).then_some(Intercept::Show);
            }
            let name = at.dotted_name()?;
            at.end()?;
            is_impersonation_setting(&name).then_some(Intercept::Show)
        }
        _ => None,
    }
}

/// `immuta_user` (Snowflake), `immuta.immuta_user` (Starburst), `immuta.impersonate.user`
/// (Databricks).
fn is_impersonation_setting(name: &[String]) -> bool {
    let parts: Vec<&str> = name.iter().map(String::as_str).collect();
    matches!(
        parts.as_slice(),
        ["immuta_user"] | ["immuta", "immuta_user"] | ["immuta", "impersonate", "user"]
    )
}

/// The impersonation target a client asked for at connect time (`-c immuta.immuta_user=x`).
pub fn startup_target(setting: &str, value: &str) -> Option<Target> {
    let name: Vec<String> = setting.split('.').map(str::to_ascii_lowercase).collect();
    is_impersonation_setting(&name).then(|| match value.trim() {
        "" => Target::Nobody,
        user => Target::User(user.to_string()),
    })
}

struct Cursor<'t, 'a> {
    toks: &'t [Token<'a>],
    i: usize,
}

impl Cursor<'_, '_> {
    fn next(&mut self) -> Option<&Token<'_>> {
        let t = self.toks.get(self.i)?;
        self.i += 1;
        Some(t)
    }

    fn word(&mut self) -> Option<String> {
        match self.next()? {
            Token::Word(w) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// An identifier, quoted or not; compared case-insensitively either way, so no spelling
    /// of the procedure's name slips past to the cluster.
    fn ident(&mut self) -> Option<String> {
        match self.next()? {
            Token::Word(w) => Some(w.to_ascii_lowercase()),
            Token::Quoted(q) => Some(q.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn dotted_name(&mut self) -> Option<Vec<String>> {
        let mut parts = vec![self.ident()?];
        while self.optional_symbol('.') {
            parts.push(self.ident()?);
        }
        Some(parts)
    }

    fn optional_word(&mut self, word: &str) -> bool {
        match self.toks.get(self.i) {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }

    fn optional_symbol(&mut self, symbol: char) -> bool {
        if self.toks.get(self.i) == Some(&Token::Symbol(symbol)) {
            self.i += 1;
            return true;
        }
        false
    }

    fn symbol(&mut self, symbol: char) -> Option<()> {
        self.optional_symbol(symbol).then_some(())
    }

    fn literal(&mut self) -> Option<String> {
        match self.next()? {
            Token::Literal(raw) => decode_literal(raw),
            _ => None,
        }
    }

    /// A user name as a string literal or a bare word, `NULL`, or `$n`.
    fn target(&mut self) -> Option<Target> {
        match self.toks.get(self.i)? {
            Token::Literal(_) => self.literal().map(Target::User),
            Token::Word(w) if w.eq_ignore_ascii_case("null") => {
                self.i += 1;
                Some(Target::Nobody)
            }
            Token::Word(w) => {
                let user = w.to_string();
                self.i += 1;
                Some(Target::User(user))
            }
            Token::Quoted(q) => {
                let user = q.clone();
                self.i += 1;
                Some(Target::User(user))
            }
            Token::Symbol('$') => {
                self.i += 1;
                match self.next()? {
                    Token::Word(n) => n.parse().ok().filter(|n| *n > 0).map(Target::Parameter),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `::text`, `::varchar` and the like after the argument.
    fn skip_cast(&mut self) {
        while self.toks.get(self.i) == Some(&Token::Symbol(':'))
            && self.toks.get(self.i + 1) == Some(&Token::Symbol(':'))
        {
            self.i += 2;
            let _ = self.ident();
        }
    }

    fn is_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    fn end(&self) -> Option<()> {
        self.is_end().then_some(())
    }
}

/// The text of `'...'` or `E'...'`; `None` for other literal forms (dollar quotes are
/// accepted verbatim).
fn decode_literal(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(inner.replace("''", "'"));
    }
    if let Some(inner) = raw
        .strip_prefix("E'")
        .or_else(|| raw.strip_prefix("e'"))
        .and_then(|r| r.strip_suffix('\''))
    {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '\'' => {
                    chars.next();
                    out.push('\'');
                }
                c => out.push(c),
            }
        }
        return Some(out);
    }
    let body = raw.strip_prefix('$')?;
    let tag_end = body.find('$')?;
    let tag = &raw[..tag_end + 2];
    raw.strip_prefix(tag)?.strip_suffix(tag).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, tag: &'static str) -> Option<Intercept> {
        Some(Intercept::Impersonate {
            target: Target::User(name.into()),
            tag,
        })
    }

    fn end(tag: &'static str) -> Option<Intercept> {
        Some(Intercept::Impersonate {
            target: Target::Nobody,
            tag,
        })
    }

    #[test]
    fn redshift_call_in_any_spelling() {
        assert_eq!(
            classify("CALL immuta_procedures.impersonate_user('analyst')"),
            user("analyst", "CALL")
        );
        assert_eq!(
            classify("call \"IMMUTA_PROCEDURES\" . /* x */ Impersonate_User ( 'o''brien'::text )"),
            user("o'brien", "CALL")
        );
        assert_eq!(
            classify("CALL immuta_procedures.impersonate_user(NULL)"),
            end("CALL")
        );
        assert_eq!(
            classify("CALL immuta_procedures.impersonate_user($1)"),
            Some(Intercept::Impersonate {
                target: Target::Parameter(1),
                tag: "CALL"
            })
        );
        assert_eq!(classify("CALL other.impersonate_user('a')"), None);
        assert_eq!(
            classify("CALL immuta_procedures.impersonate_user('a') x"),
            None
        );
    }

    #[test]
    fn other_platforms_forms() {
        assert_eq!(classify("SET immuta_user = 'admin'"), user("admin", "SET"));
        assert_eq!(classify("set IMMUTA_USER to admin"), user("admin", "SET"));
        assert_eq!(
            classify("SET immuta.impersonate.user = analyst"),
            user("analyst", "SET")
        );
        assert_eq!(classify("SET immuta.impersonate.user ="), end("SET"));
        assert_eq!(classify("SET immuta_user = ''"), end("SET"));
        assert_eq!(classify("RESET SESSION immuta.immuta_user"), end("RESET"));
        assert_eq!(classify("RESET immuta_user"), end("RESET"));
        assert_eq!(
            classify("SHOW SESSION LIKE 'immuta.immuta_user'"),
            Some(Intercept::Show)
        );
        assert_eq!(classify("SHOW immuta_user"), Some(Intercept::Show));
        assert_eq!(classify("SET immuta.user = 'x'"), None);
        assert_eq!(classify("SHOW search_path"), None);
        assert_eq!(classify("SELECT 1"), None);
    }

    fn config(extra: &str) -> Config {
        let verifier = crate::auth::ScramVerifier::generate_with("pw", b"salt", 4096);
        let mut toml = format!("[tls]\nmode = \"disable\"\n{extra}\n");
        for (name, extra) in [
            (
                "admin",
                "groups = [\"hr\"]\npermissions = [\"IMPERSONATE_USER\"]",
            ),
            ("analyst", ""),
            ("bi_service", "permissions = [\"IMPERSONATE_USER\"]"),
            ("auditor", "groups = [\"audit\"]"),
        ] {
            toml.push_str(&format!(
                "[[users]]\nname = \"{name}\"\npassword = \"{verifier}\"\n{extra}\n"
            ));
        }
        Config::parse(&toml, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn who_may_impersonate() {
        let c = config("");
        assert_eq!(authorize(&c, "admin", None, Some("analyst")), Ok(()));
        assert_eq!(
            authorize(&c, "analyst", None, Some("admin"))
                .unwrap_err()
                .code,
            "42501"
        );
        assert_eq!(
            authorize(&c, "auditor", None, Some("admin"))
                .unwrap_err()
                .code,
            "42501"
        );
        assert_eq!(
            authorize(&c, "admin", None, Some("nobody"))
                .unwrap_err()
                .code,
            "42704"
        );
        assert_eq!(authorize(&c, "analyst", None, None), Ok(()));
        let c = config(
            "[impersonation]\ngroup = \"audit\"\nallowed_impersonators = [\"auditor\", \"admin\"]",
        );
        assert_eq!(authorize(&c, "auditor", None, Some("admin")), Ok(()));
        assert_eq!(
            authorize(&c, "bi_service", None, Some("admin"))
                .unwrap_err()
                .code,
            "42501"
        );
        let c = config("[impersonation]\nsingle_user_per_session = true");
        assert_eq!(
            authorize(&c, "admin", Some("analyst"), Some("analyst")),
            Ok(())
        );
        assert_eq!(
            authorize(&c, "admin", Some("analyst"), Some("bi_service"))
                .unwrap_err()
                .code,
            "42501"
        );
        assert_eq!(
            authorize(&c, "admin", Some("analyst"), None)
                .unwrap_err()
                .code,
            "42501"
        );
    }

    #[test]
    fn connect_time_form() {
        assert_eq!(
            startup_target("immuta.immuta_user", "analyst"),
            Some(Target::User("analyst".into()))
        );
        assert_eq!(startup_target("immuta.user", "analyst"), None);
    }
}
