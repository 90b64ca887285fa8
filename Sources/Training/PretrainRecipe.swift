/// Named defaults for pre-training's recipe options (`bert pretrain --recipe`); an explicit option always wins.
public enum PretrainRecipe: String, CaseIterable, Sendable {
    /// What measured best so far on small CPU budgets (issue 10; not yet a +3-point gain): a high peak rate, no dropout, length-grouped
    /// batches, sinusoidally initialised positions.
    case smallBudget = "small-budget"
    /// google-research/bert's run_pretraining.py: peak rate 1e-4, the config's dropout (0.1),
    /// batches in plain shuffled order padded to the full length, random positions.
    case google
    /// Continued pre-training of a public BERT (`--init`), as Gururangan et al. 2020 and transformers'
    /// run_mlm.py: peak rate 1e-4, the checkpoint's own dropout, length-grouped batches; the positions
    /// come from the checkpoint.
    case adapt

    /// The peak learning rate.
    public var learningRate: Double { self == .smallBudget ? 5e-4 : 1e-4 }
    /// nil keeps the config's dropout.
    public var dropout: Double? { self == .smallBudget ? 0 : nil }
    /// Length-grouped batches (windows of 64 batches).
    public var groupByLength: Bool { self != .google }
    /// Adam bias correction when the command line leaves it unset; nil keeps the optimizer's default (off for
    /// AdamW as google-research/bert, on for LAMB). adapt turns it on: without it, Adam's early steps are 3 to 6
    /// times the learning rate (m/√v with both moments still near zero), which a trained encoder pays for.
    public var biasCorrection: Bool? { self == .adapt ? true : nil }
    /// Sinusoidally initialised position embeddings.
    public var sinusoidalPositions: Bool { self == .smallBudget }

    /// What each recipe sets, for the command line's help.
    public static let help = """
        small-budget (default): --learning-rate 5e-4 --dropout 0 --group-by-length --sinusoidal-positions; \
        what measured best so far on small CPU budgets (docs/results.md; issue 10).
        google: --learning-rate 1e-4, the config's dropout (0.1), --no-group-by-length --no-sinusoidal-positions; \
        with the defaults shared by both (AdamW without bias correction, ε 1e-6, decay 0.01, clipping 1.0, \
        linear warm-up then decay) these are google-research/bert's settings.
        adapt: --learning-rate 1e-4, the checkpoint's dropout, --bias-correction, --group-by-length \
        --no-sinusoidal-positions; for continued pre-training from --init (transformers' run_mlm.py uses Adam \
        with bias correction, and early steps without it are several times the learning rate).
        """
}

/// What pre-training optimises (`bert pretrain --objective`).
public enum PretrainObjective: String, CaseIterable, Sendable, Codable {
    /// Masked LM plus next-sentence prediction (BERT's).
    case mlmNsp = "mlm-nsp"
    /// Masked LM alone (RoBERTa's, and Gururangan et al.'s DAPT/TAPT): no NSP loss; the NSP head and the
    /// pooler are left exactly as they started (no gradient, no weight decay), so a public checkpoint's
    /// pooler reaches fine-tuning unchanged.
    case mlm
    /// ELECTRA's replaced-token detection (Clark et al. 2020): a small generator learns MLM, a
    /// discriminator learns at every token whether the generator replaced it; the discriminator is kept.
    case electra
}
