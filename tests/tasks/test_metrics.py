"""Metrics and baselines against values computed by hand in the comments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rnnkit.errors import ConfigError, DataError, ShapeError
from rnnkit.tasks.classify.metrics import accuracy
from rnnkit.tasks.text.metrics import bits_per_char
from rnnkit.report import format_table
from rnnkit.tasks.forecast.metrics import (forecast_metrics, last_value_forecast, mae, mape, mase, rmse,
                                           seasonal_naive_forecast, smape)

# y - yhat = [-1, 0, -1, 2], |e| = [1, 0, 1, 2]
Y = np.array([1.0, 2.0, 0.0, 4.0])
YHAT = np.array([2.0, 2.0, 1.0, 2.0])
Y_TRAIN = np.array([1.0, 3.0, 2.0, 5.0])


def test_mae_rmse_by_hand():
    assert mae(Y, YHAT) == pytest.approx(4 / 4)  # (1 + 0 + 1 + 2) / 4
    assert rmse(Y, YHAT) == pytest.approx(math.sqrt(6 / 4))  # sqrt((1 + 0 + 1 + 4) / 4)


def test_mape_skips_zero_truth():
    # points with y != 0: |e|/|y| = 1/1, 0/2, 2/4 -> mean 0.5 -> 50 %
    assert mape(Y, YHAT) == pytest.approx(50.0)
    assert math.isnan(mape(np.zeros(3), np.ones(3)))


def test_smape_by_hand_with_zero_over_zero():
    # 200*1/3, 200*0/4, 200*1/1, 200*2/6 -> (66.67 + 0 + 200 + 66.67) / 4
    assert smape(Y, YHAT) == pytest.approx((200 / 3 + 0 + 200 + 400 / 6) / 4)
    assert smape(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0  # 0/0 counts as 0
    assert smape(np.array([0.0]), np.array([3.0])) == pytest.approx(200.0)


def test_mase_m1_and_m2():
    # m=1: |3-1|, |2-3|, |5-2| = 2, 1, 3 -> scale 2; MAE 1 -> 0.5
    assert mase(Y, YHAT, Y_TRAIN, m=1) == pytest.approx(0.5)
    # m=2: |2-1|, |5-3| = 1, 2 -> scale 1.5; 1 / 1.5
    assert mase(Y, YHAT, Y_TRAIN, m=2) == pytest.approx(1 / 1.5)


def test_mase_multivariate_scales_each_column():
    y_train = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [5.0, 1.0]])
    # scales (m=1): column 0 -> (2+1+3)/3 = 2; column 1 -> (0+1+0)/3 = 1/3
    y_true = np.array([[1.0, 0.0], [2.0, 0.0]])
    y_pred = np.array([[2.0, 0.0], [2.0, 1.0]])
    # column MAEs 0.5 and 0.5 -> scaled 0.25 and 1.5 -> mean 0.875
    assert mase(y_true, y_pred, y_train) == pytest.approx(0.875)
    with pytest.raises(ShapeError, match="2 column"):
        mase(y_true[:, :1], y_pred[:, :1], y_train)


def test_mase_zero_scale_is_nan_and_short_train_is_an_error():
    assert math.isnan(mase(Y, YHAT, np.ones(5)))
    with pytest.raises(DataError, match="more than 4 training values"):
        mase(Y, YHAT, Y_TRAIN, m=4)
    with pytest.raises(ConfigError):
        mase(Y, YHAT, Y_TRAIN, m=0)


@pytest.mark.parametrize("fn", [mae, rmse, mape, smape])
def test_shape_mismatch_raises(fn):
    with pytest.raises(ShapeError, match=r"\(4,\).*\(3,\)"):
        fn(Y, YHAT[:3])


def test_forecast_metrics_overall_and_per_step():
    y_true = Y.reshape(2, 2, 1)  # windows [[1, 2]], [[0, 4]]
    y_pred = YHAT.reshape(2, 2, 1)
    out = forecast_metrics(y_true, y_pred, Y_TRAIN, m=1)
    assert out["overall"]["mae"] == pytest.approx(1.0)
    assert out["overall"]["mase"] == pytest.approx(0.5)
    assert len(out["per_step"]) == 2
    # step 0: y [1, 0], yhat [2, 1] -> |e| = 1, 1; step 1: y [2, 4], yhat [2, 2] -> 0, 2
    assert out["per_step"][0]["mae"] == pytest.approx(1.0)
    assert out["per_step"][1]["rmse"] == pytest.approx(math.sqrt(2.0))
    assert out["per_step"][0]["mape"] == pytest.approx(100.0)  # only y=1 counts: 1/1
    assert set(out["overall"]) == {"mae", "rmse", "mape", "smape", "mase"}
    assert all(type(v) is float for v in out["overall"].values())
    json.dumps(out)  # plain Python values
    with pytest.raises(ShapeError, match="windows, horizon, columns"):
        forecast_metrics(Y, YHAT, Y_TRAIN)


def test_last_value_and_seasonal_naive():
    context = np.arange(5.0).reshape(1, 5, 1)  # [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(last_value_forecast(context, 3)[0, :, 0], [4, 4, 4])
    np.testing.assert_array_equal(seasonal_naive_forecast(context, 5, m=2)[0, :, 0],
                                  [3, 4, 3, 4, 3])
    np.testing.assert_array_equal(seasonal_naive_forecast(context, 2, m=5)[0, :, 0], [0, 1])
    np.testing.assert_array_equal(seasonal_naive_forecast(context, 3, m=1),
                                  last_value_forecast(context, 3))
    two = np.stack([np.arange(4.0), 10 + np.arange(4.0)], axis=-1)[None]  # (1, 4, 2)
    assert seasonal_naive_forecast(two, 3, m=2).tolist() == [[[2, 12], [3, 13], [2, 12]]]
    with pytest.raises(ConfigError, match="lookback of at least 6"):
        seasonal_naive_forecast(context, 2, m=6)
    with pytest.raises(ConfigError):
        last_value_forecast(context, 0)
    with pytest.raises(ShapeError):
        last_value_forecast(np.arange(5.0), 1)


def test_accuracy_and_bits_per_char():
    assert accuracy(np.array([0, 1, 2, 1]), np.array([0, 2, 2, 1])) == 0.75
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # argmax 0, 1, 0
    assert accuracy(np.array([0, 1, 1]), scores) == pytest.approx(2 / 3)
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(4)) == pytest.approx(2.0)
    with pytest.raises(ShapeError):
        accuracy(np.array([0, 1]), np.array([0, 1, 1]))


def test_format_table_aligns_columns():
    table = format_table({"lstm": {"mae": 1.2, "rmse": 1.5},
                          "last value": {"mae": 2.0, "rmse": 2.5, "mase": math.nan}})
    assert table.splitlines() == [
        "model          mae    rmse  mase",
        "lstm        1.2000  1.5000     -",
        "last value  2.0000  2.5000   nan",
    ]
    assert format_table({"a": {"mae": 1.0, "rmse": 2.0}}, columns=["rmse"]) == \
        "model    rmse\na      2.0000"
