//! Elastic detection-rules files as every host hands them to the rule: a name and the TOML text.
//! The rule parses them; what a host does is find them ([`read`]): the meaning of `--rules` and of
//! the `rules` configuration key, in one place for the CLI, the Python package and the Fluent Bit
//! filter.

use std::path::{Path, PathBuf};

/// A rule file: the name messages give (its path) and its TOML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFile {
    /// The file's name, for messages.
    pub name: String,
    /// The TOML text.
    pub text: String,
}

/// The rule files `paths` name, in order: a file as it is, a folder as the `*.toml` files in it, in
/// name order. Relative paths are from `base` (the configuration file's folder). The error names
/// the file or folder.
pub fn read(
    base: &Path,
    paths: impl IntoIterator<Item = PathBuf>,
) -> Result<Vec<RuleFile>, String> {
    let mut files = Vec::new();
    for path in paths {
        let path = base.join(path);
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|error| format!("cannot read rule folder {}: {error}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.is_file() && file.extension().is_some_and(|ext| ext == "toml"))
                .collect();
            if found.is_empty() {
                return Err(format!("rule folder {} has no *.toml file", path.display()));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path);
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|error| format!("cannot read rule file {}: {error}", path.display()))?;
            Ok(RuleFile {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_give_their_toml_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("newterms-rule-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pack")).unwrap_or_default();
        for (name, text) in [
            ("pack/b.toml", "b"),
            ("pack/a.toml", "a"),
            ("pack/c.txt", "c"),
            ("one.toml", "1"),
        ] {
            std::fs::write(dir.join(name), text).unwrap_or_default();
        }
        let files =
            read(&dir, [PathBuf::from("one.toml"), PathBuf::from("pack")]).unwrap_or_default();
        let texts: Vec<&str> = files.iter().map(|file| file.text.as_str()).collect();
        assert_eq!(texts, ["1", "a", "b"]);
        assert!(files[1].name.ends_with("a.toml"));
        std::fs::create_dir_all(dir.join("empty")).unwrap_or_default();
        let empty = read(&dir, [PathBuf::from("empty")])
            .err()
            .unwrap_or_default();
        assert!(
            empty.contains("has no *.toml file") && empty.contains("empty"),
            "{empty}"
        );
        let missing = read(&dir, [PathBuf::from("nope.toml")])
            .err()
            .unwrap_or_default();
        assert!(
            missing.contains("cannot read rule file") && missing.contains("nope.toml"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
