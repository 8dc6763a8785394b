//! The AWS shared credentials file (`~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`),
//! read when neither the configuration nor the `AWS_*` variables name a key: its `[default]`
//! profile, or `AWS_PROFILE`'s.

use std::path::PathBuf;

/// Keys of one profile.
#[derive(Clone, PartialEq, Eq)]
pub struct FileCredentials {
    /// `aws_access_key_id`.
    pub key_id: String,
    /// `aws_secret_access_key`.
    pub secret: String,
    /// `aws_session_token`, for temporary credentials.
    pub token: Option<String>,
}

/// The credentials of the profile the environment names, if the file has them.
pub fn from_shared_file() -> Option<FileCredentials> {
    let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws/credentials"))
        })?;
    let text = std::fs::read_to_string(path).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    profile_credentials(&text, &profile)
}

/// The keys of `profile` in the INI text of a credentials file.
pub fn profile_credentials(text: &str, profile: &str) -> Option<FileCredentials> {
    let mut in_profile = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_profile = section.trim() == profile;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !in_profile {
            continue;
        }
        let value = Some(value.trim().to_owned());
        match key.trim() {
            "aws_access_key_id" => key_id = value,
            "aws_secret_access_key" => secret = value,
            "aws_session_token" => token = value,
            _ => {}
        }
    }
    Some(FileCredentials {
        key_id: key_id?,
        secret: secret?,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_profile_is_read_and_others_ignored() {
        let text = "# keys\n[default]\naws_access_key_id = AKID1\naws_secret_access_key=s1\n\n\
                    [ci]\naws_access_key_id = AKID2\naws_secret_access_key = s2\n\
                    aws_session_token = t2\n[broken]\naws_access_key_id = AKID3\n";
        let default = profile_credentials(text, "default").unwrap();
        assert_eq!(
            (default.key_id.as_str(), default.secret.as_str()),
            ("AKID1", "s1")
        );
        assert_eq!(default.token, None);
        let ci = profile_credentials(text, "ci").unwrap();
        assert_eq!(ci.token.as_deref(), Some("t2"));
        assert!(profile_credentials(text, "broken").is_none(), "no secret");
        assert!(profile_credentials(text, "absent").is_none());
    }
}
