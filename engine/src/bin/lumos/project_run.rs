//! `lumos generate --project FILE`: repeats what Generate would make in the app from a saved
//! project — its references with their weights and crops, its start image and mask, its mode
//! and sampler settings — so that a project set up by hand can be rendered again, at another
//! seed or on another machine, without the app.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lumos_engine::protocol::GenerateRequest;

use crate::SamplingArgs;

/// Loads the project and runs it; `--seed` replaces the project's seed, and the model,
/// device, precision and output folder come from the command line.
pub fn generate_project(path: &Path, args: &SamplingArgs) -> anyhow::Result<ExitCode> {
    let project = lumos_engine::project::load(path)?;
    let recipe = &project.recipe;
    let mode = recipe.mode.clone().with_context(|| {
        format!(
            "{} has no runnable mode saved (were a sweep's rows left incomplete?); open it in \
             Lumos Studio, fix the settings and save it again",
            path.display()
        )
    })?;
    if project.references.is_empty() {
        anyhow::bail!(
            "{} has no reference images; add some in Lumos Studio first",
            path.display()
        );
    }
    let model = args.resolve_model()?;
    if let Some(saved) = &recipe.model
        && *saved != model.name
    {
        eprintln!(
            "note: the project was set up with the model \"{saved}\"; using \"{}\" (--model)",
            model.name
        );
    }
    let mut settings = recipe.sampler.clone();
    if let Some(seed) = args.seed {
        settings.seed = seed;
    }
    eprintln!("seed {}", settings.seed);
    let request = GenerateRequest {
        model,
        device: args.device,
        references: project.engine_references(),
        mode,
        settings,
        init: project.engine_init(),
        mix: recipe.mix,
    };
    crate::run_generation(request, args)
}
