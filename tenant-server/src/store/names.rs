//! Name rules, checked before a name touches the filesystem or the store, and
//! [`ProjectName`]: a project's name checked once, where a request enters, and trusted by
//! the store from then on (it becomes a directory under the workspace).

use std::fmt;
use std::ops::Deref;

use super::error::StoreError;

/// Chroma's rule for tenant, database and collection names: 3–512 characters of
/// `[a-zA-Z0-9._-]`, starting and ending with a letter or digit. It also excludes every
/// path trick (`/`, `..` cannot start or end a name, and `.`/`..` are too short), which is
/// why project names (directories under the workspace) use it too.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let len_ok = (3..=512).contains(&bytes.len());
    let chars_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let ends_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if len_ok && chars_ok && ends_ok && !name.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "Invalid {kind} name [{name}]: expected 3-512 characters of [a-zA-Z0-9._-], \
             starting and ending with a letter or digit, without '..'"
        ))
    }
}

/// A valid project name (Chroma's tenant rule, [`validate_name`]). The only way to get
/// one is [`ProjectName::new`], so a `&ProjectName` is a name already checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    /// Checks `name` as a project name; the error says "project".
    pub fn new(name: impl Into<String>) -> Result<ProjectName, StoreError> {
        ProjectName::named("project", name)
    }

    /// Checks `name` as a project name, calling it a `kind` in the error (the Chroma API
    /// says "tenant" for the same thing).
    pub fn named(kind: &str, name: impl Into<String>) -> Result<ProjectName, StoreError> {
        let name = name.into();
        validate_name(kind, &name).map_err(StoreError::InvalidArgument)?;
        Ok(ProjectName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for ProjectName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ProjectName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{validate_name, ProjectName};

    #[test]
    fn project_names_are_checked_once_with_the_rule() {
        assert_eq!(
            ProjectName::new("acme-1").expect("valid").as_str(),
            "acme-1"
        );
        let e = ProjectName::named("tenant", "a/b").expect_err("invalid");
        assert!(e.to_string().contains("Invalid tenant name [a/b]"), "{e}");
    }

    #[test]
    fn accepts_chroma_names() {
        for n in ["abc", "my-project", "a.b_c-9", "Tenant42", &"x".repeat(512)] {
            assert!(validate_name("project", n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for n in [
            "",
            "ab",
            "..",
            "...",
            "a..b",
            "-abc",
            "abc-",
            ".abc",
            "ab/c",
            "a\\bc",
            "a bc",
            "ab\0c",
            "été",
            &"x".repeat(513),
            "../etc",
        ] {
            assert!(validate_name("project", n).is_err(), "{n:?}");
        }
    }
}
