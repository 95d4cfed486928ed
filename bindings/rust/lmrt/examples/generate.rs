//! generate - text generation with the lmrt Rust binding, the way an
//! application would do it (a Rust twin of examples/lmrt-generate.c).
//!
//!   cargo run --example generate -- [-m MODEL] [-p PROMPT] [-n N] [--temp T]
//!                                   [--seed S] [--region CC] [--stop STR] [--ids]
//!
//! No -m: the built-in stories260K model. No prompt: generation starts from BOS.

use std::io::Write;
use std::process::ExitCode;

struct Args {
    model: Option<String>,
    prompt: Option<String>,
    region: Option<String>,
    opts: lmrt::GenerateOptions,
    ids: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        prompt: None,
        region: None,
        opts: lmrt::GenerateOptions::new(),
        ids: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--ids" {
            a.ids = true;
            continue;
        }
        let v = it.next().ok_or(format!("{} needs a value", flag))?;
        let num = |what: &str| format!("bad {} '{}'", what, v);
        match flag.as_str() {
            "-m" | "--model" => a.model = Some(v),
            "-p" | "--prompt" => a.prompt = Some(v),
            "--region" => a.region = Some(v),
            "--stop" => a.opts.stop.push(v),
            "-n" => a.opts.max_tokens = v.parse().map_err(|_| num("count"))?,
            "--temp" => a.opts.temperature = Some(v.parse().map_err(|_| num("temperature"))?),
            "--top-k" => a.opts.top_k = Some(v.parse().map_err(|_| num("top-k"))?),
            "--seed" => a.opts.seed = Some(v.parse().map_err(|_| num("seed"))?),
            _ => return Err(format!("unknown option '{}'", flag)),
        }
    }
    Ok(a)
}

fn run(a: &Args) -> lmrt::Result<()> {
    let model = match &a.model {
        Some(path) => lmrt::Model::load(path)?,
        None => lmrt::Model::builtin()?,
    };
    let mut session = model.session(a.region.as_deref())?;
    let mut out = std::io::stdout();
    if let (Some(p), false) = (&a.prompt, a.ids) {
        print!("{}", p);
    }
    let mut gen = session.generate(a.prompt.as_deref(), &a.opts)?;
    if a.ids {
        for piece in gen.by_ref() {
            piece?;
        }
        let ids: Vec<String> = gen.tokens().iter().map(|t| t.to_string()).collect();
        println!("{}", ids.join(" "));
    } else {
        for piece in gen.by_ref() {
            print!("{}", piece?);
            out.flush().ok();
        }
        println!();
    }
    eprintln!(
        "generate: {} tokens, stopped by {:?}",
        gen.tokens().len(),
        gen.stop_reason()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("generate: {}", e);
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("generate: {}", e);
            ExitCode::FAILURE
        }
    }
}
