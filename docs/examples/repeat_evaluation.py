"""Is a loss better than cross-entropy, or was it the seed? Train both under several seeds."""

from deap_lossgp.fitness import compare_with_ce, format_comparison, quiet_tensorflow

quiet_tensorflow()  # TensorFlow's own log lines off, as the command line does unless given --verbose

# Cross-entropy written as a tree against Keras's cross-entropy: any "win" here is seed noise.
comparison = compare_with_ce("neg(mul(y_true, log(y_pred)))", repeats=3, epochs=1, tasks=["digits"],
                             max_train_samples=100)
print(format_comparison(comparison))
digits = comparison["tasks"]["digits"]
print("paired improvements per seed:", digits["improvement"]["values"], "p =", digits["p_value"])
