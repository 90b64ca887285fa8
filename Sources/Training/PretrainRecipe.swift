/// Named defaults for pre-training's recipe options (`bert pretrain --recipe`); an explicit option always wins.
public enum PretrainRecipe: String, CaseIterable, Sendable {
    /// What measured best so far on small CPU budgets (issue 10; not yet a +3-point gain): a high peak rate, no dropout, length-grouped
    /// batches, sinusoidally initialised positions.
    case smallBudget = "small-budget"
    /// google-research/bert's run_pretraining.py: peak rate 1e-4, the config's dropout (0.1),
    /// batches in plain shuffled order padded to the full length, random positions.
    case google

    /// The peak learning rate.
    public var learningRate: Double { self == .google ? 1e-4 : 5e-4 }
    /// nil keeps the config's dropout.
    public var dropout: Double? { self == .google ? nil : 0 }
    /// Length-grouped batches (windows of 64 batches).
    public var groupByLength: Bool { self == .smallBudget }
    /// Sinusoidally initialised position embeddings.
    public var sinusoidalPositions: Bool { self == .smallBudget }

    /// What each recipe sets, for the command line's help.
    public static let help = """
        small-budget (default): --learning-rate 5e-4 --dropout 0 --group-by-length --sinusoidal-positions; \
        what measured best so far on small CPU budgets (README, results; issue 10).
        google: --learning-rate 1e-4, the config's dropout (0.1), --no-group-by-length --no-sinusoidal-positions; \
        with the defaults shared by both (AdamW without bias correction, ε 1e-6, decay 0.01, clipping 1.0, \
        linear warm-up then decay) these are google-research/bert's settings.
        """
}
