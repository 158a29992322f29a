//! Database URLs with the password held apart, so that printing or logging a URL never shows it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// `scheme://user[:password]@host[:port]/database`.
#[derive(Clone)]
pub struct DbUrl {
    /// `postgres` or `mysql`.
    pub scheme: String,
    /// User name (may be empty).
    pub user: String,
    password: Option<SecretString>,
    /// Host name or address.
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// Database name.
    pub database: String,
}

impl DbUrl {
    /// Parses a database URL.
    ///
    /// # Errors
    /// A message saying what part is missing or malformed (never echoing the password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected scheme://user@host:port/database")?;
        let scheme = match scheme {
            "postgres" | "postgresql" => "postgres",
            "mysql" | "mariadb" => "mysql",
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: use postgres:// or mysql://"
                ));
            }
        };
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (user, password) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(SecretString::from(p.to_string()))),
                None => (a.to_string(), None),
            },
            None => (String::new(), None),
        };
        let (hostport, database) = hostpart
            .split_once('/')
            .ok_or("missing /database at the end of the URL")?;
        let database = database.split('?').next().unwrap_or_default().to_string();
        if database.is_empty() {
            return Err("missing database name".into());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                Some(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
            ),
            None => (hostport.to_string(), None),
        };
        if host.is_empty() {
            return Err("missing host".into());
        }
        Ok(Self {
            scheme: scheme.to_string(),
            user,
            password,
            host,
            port,
            database,
        })
    }

    /// The password from the URL, if it had one.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(ExposeSecret::expose_secret)
    }

    /// The same URL pointing at another database.
    #[must_use]
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_string(),
            ..self.clone()
        }
    }

    /// The URL without any password: safe for command lines and messages.
    #[must_use]
    pub fn without_password(&self) -> String {
        let user = if self.user.is_empty() {
            String::new()
        } else {
            format!("{}@", self.user)
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let scheme = if self.scheme == "postgres" {
            "postgresql"
        } else {
            "mysql"
        };
        format!("{scheme}://{user}{}{port}/{}", self.host, self.database)
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_password())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_password())
    }
}

#[cfg(test)]
mod tests {
    use super::DbUrl;

    #[test]
    fn password_is_held_apart() {
        let u = DbUrl::parse("postgres://app:s3cret@db.internal:5433/shop").expect("valid");
        assert_eq!(u.password(), Some("s3cret"));
        assert_eq!(
            u.without_password(),
            "postgresql://app@db.internal:5433/shop"
        );
        assert!(!format!("{u:?} {u}").contains("s3cret"));
        assert_eq!(u.with_database("other").database, "other");
        assert!(DbUrl::parse("postgres://h/").is_err());
        assert!(DbUrl::parse("oracle://h/x").is_err());
        let e = DbUrl::parse("postgres://u:pw@h:notaport/x").expect_err("bad port");
        assert!(!e.contains("pw"), "{e}");
    }
}
