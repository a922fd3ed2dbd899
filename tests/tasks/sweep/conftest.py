import pytest


@pytest.fixture
def interrupt_job(monkeypatch):
    """``interrupt_job("job-001")``: that job raises KeyboardInterrupt as it starts training (a Ctrl-C
    in the middle of a sweep); every other job trains as usual."""
    from rnnkit.tasks.sweep import job as job_module
    train = job_module._train

    def interrupt(name):
        def train_or_stop(spec, *args):
            if spec["name"] == name:
                raise KeyboardInterrupt
            return train(spec, *args)
        monkeypatch.setattr(job_module, "_train", train_or_stop)
    return interrupt
