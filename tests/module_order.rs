//! The modules of `src/lib.rs` are declared in the order data flows, and each reads only
//! from modules declared before it (tests excluded); the development guide states the same
//! order. A module that reaches downstream, or a guide that drifts, fails here.

mod common;

/// The top-level modules in `lib.rs` declaration order.
fn declared() -> Vec<String> {
    let lib = std::fs::read_to_string(common::root().join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect()
}

/// The source of a module's files, its `#[cfg(test)]` parts cut off.
fn sources(module: &str) -> Vec<(String, String)> {
    let root = common::root().join("src");
    let file = root.join(format!("{module}.rs"));
    let mut paths = Vec::new();
    if file.is_file() {
        paths.push(file);
    }
    let mut dirs = vec![root.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                paths.push(path);
            }
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            (path.display().to_string(), code)
        })
        .collect()
}

#[test]
fn every_module_reads_only_from_modules_declared_before_it() {
    let order = declared();
    assert!(order.len() > 10, "{order:?}");
    let mut problems = Vec::new();
    for (position, module) in order.iter().enumerate() {
        for (path, code) in sources(module) {
            for used in code.split("crate::").skip(1) {
                let name: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let Some(at) = order.iter().position(|m| *m == name) else {
                    continue;
                };
                if at > position {
                    problems.push(format!("{path} reads `{name}`, declared after `{module}`"));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_development_guide_states_the_declared_order() {
    let flow: Vec<String> = declared().into_iter().skip_while(|m| m != "spec").collect();
    let guide = std::fs::read_to_string(common::root().join("docs/development.md")).unwrap();
    let mut rest = guide.as_str();
    for module in &flow {
        let tick = format!("`{module}`");
        let at = rest.find(&tick).unwrap_or_else(|| {
            panic!("docs/development.md: {tick} missing or out of order ({flow:?})")
        });
        rest = &rest[at + tick.len()..];
    }
}
