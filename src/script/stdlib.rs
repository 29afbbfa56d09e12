//! The embedded standard library (`stdlib/*.rhai`) and the module resolver.
//!
//! `import "NAME" as m;` looks, in order, at:
//! 1. the embedded modules ([`STDLIB`]), so `import "apps" as apps;` always means this one;
//! 2. `NAME.rhai` next to the importing file (the script's folder for the script itself);
//! 3. the user lib folder, `$XDG_CONFIG_HOME/midscript/lib/NAME.rhai`.
//!
//! Each module is compiled and evaluated once per run; its source text is kept so errors
//! inside it are reported with its own lines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use super::report::Sources;

/// One embedded module.
#[derive(Debug, Clone, Copy)]
pub struct StdModule {
    /// The import name: `import "apps" as apps;`.
    pub name: &'static str,
    /// The Rhai source.
    pub source: &'static str,
}

/// Every embedded module.
pub const STDLIB: &[StdModule] = &[
    StdModule {
        name: "apps",
        source: include_str!("../../stdlib/apps.rhai"),
    },
    StdModule {
        name: "compose",
        source: include_str!("../../stdlib/compose.rhai"),
    },
    StdModule {
        name: "jobs",
        source: include_str!("../../stdlib/jobs.rhai"),
    },
    StdModule {
        name: "users",
        source: include_str!("../../stdlib/users.rhai"),
    },
];

/// The source name errors show for an embedded module: `stdlib/apps.rhai`.
pub(crate) fn stdlib_source_name(name: &str) -> String {
    format!("stdlib/{name}.rhai")
}

/// Resolves `import` paths (see the module docs).
pub(crate) struct Resolver {
    lib_dir: Option<PathBuf>,
    script_dir: PathBuf,
    sources: Sources,
    cache: RefCell<HashMap<String, Shared<Module>>>,
}

impl Resolver {
    pub(crate) fn new(script_dir: PathBuf, lib_dir: Option<PathBuf>, sources: Sources) -> Resolver {
        Resolver {
            lib_dir,
            script_dir,
            sources,
            cache: RefCell::default(),
        }
    }

    fn candidates(&self, importer: Option<&str>, path: &str) -> Vec<PathBuf> {
        let file = if path.ends_with(".rhai") {
            path.to_owned()
        } else {
            format!("{path}.rhai")
        };
        if Path::new(&file).is_absolute() {
            return vec![PathBuf::from(file)];
        }
        let mut dirs = Vec::new();
        // Next to the importing file, when it is a file (not an embedded module, not `-e`).
        if let Some(importer) = importer
            && importer != "-e"
            && !importer.starts_with("stdlib/")
            && let Some(parent) = Path::new(importer).parent()
        {
            dirs.push(if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_path_buf()
            });
        }
        dirs.push(self.script_dir.clone());
        if let Some(lib) = &self.lib_dir {
            dirs.push(lib.clone());
        }
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        dirs.into_iter().map(|d| d.join(&file)).collect()
    }

    fn load(
        &self,
        engine: &Engine,
        source_name: String,
        text: String,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(m) = self.cache.borrow().get(&source_name) {
            return Ok(m.clone());
        }
        self.sources
            .borrow_mut()
            .insert(source_name.clone(), text.clone());
        let in_module = |err: Box<EvalAltResult>| {
            Box::new(EvalAltResult::ErrorInModule(source_name.clone(), err, pos))
        };
        let mut ast = engine.compile(&text).map_err(|e| in_module(e.into()))?;
        ast.set_source(source_name.as_str());
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        self.cache.borrow_mut().insert(source_name, module.clone());
        let _ = path;
        Ok(module)
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(m) = STDLIB.iter().find(|m| m.name == path) {
            return self.load(
                engine,
                stdlib_source_name(m.name),
                m.source.to_owned(),
                path,
                pos,
            );
        }
        for candidate in self.candidates(source, path) {
            if !candidate.is_file() {
                continue;
            }
            let name = candidate.display().to_string();
            let text = std::fs::read_to_string(&candidate).map_err(|e| {
                Box::new(EvalAltResult::ErrorInModule(
                    name.clone(),
                    Box::new(EvalAltResult::ErrorSystem(
                        format!("cannot read {name}"),
                        Box::new(e),
                    )),
                    pos,
                ))
            })?;
            return self.load(engine, name, text, path, pos);
        }
        Err(Box::new(EvalAltResult::ErrorModuleNotFound(
            path.to_owned(),
            pos,
        )))
    }
}

/// Share the resolver's source table with the report.
pub(crate) fn new_sources() -> Sources {
    Rc::new(RefCell::new(HashMap::new()))
}
