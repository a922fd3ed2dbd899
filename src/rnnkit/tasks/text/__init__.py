"""Character language models: a text in, a trained model that scores, samples and suggests out.

The same files in each job: config, data, model, workflow, metrics, run, cli."""
