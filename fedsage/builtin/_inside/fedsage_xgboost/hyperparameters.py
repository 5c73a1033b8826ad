"""Hyperparameter validation of SageMaker's XGBoost algorithm mode.

The names, aliases, ranges, parsing, order of checks and message texts are those of the
image (``reference/xgboost-builtin.md`` section 2), so that a job refused here is refused
on SageMaker with the same words, and the other way round.  Values arrive as the strings
of ``hyperparameters.json``; there are no defaults: what is not given is left to xgboost.

Deliberate differences, each one a failure that stays a failure:
- ``eval_metric`` without ``objective`` raises a ``UserError`` that says so, where the
  image fails with a bare ``KeyError: 'objective'``;
- ``monotone_constraints`` is parsed with ``ast.literal_eval`` instead of ``eval`` (the
  same values, nothing executed), and a syntax error there is a parse error;
- the gblinear ``updater`` message lists the options (the image's text prints a
  generator object letter by letter).
"""

import ast

from .errors import AlgorithmError, UserError

XGB_MAXIMIZE_METRICS = [
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
]
XGB_MINIMIZE_METRICS = [
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
]
# The metric names the image defines for tuning (and its _tuning_objective_metric range).
TUNING_METRICS = ["validation:%s" % m for m in XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS]

OBJECTIVES = [
    "aft_loss_distribution",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:absoluteerror",
    "reg:tweedie",
    "survival:aft",
    "survival:cox",
]
# As the image declares it: with repeats, and without grow_quantile_histmaker.
UPDATER_RANGE = [
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_colmaker",
    "shotgun",
    "coord_descent",
    "refresh",
    "prune",
]
ALIASES = {
    "learning_rate": "eta",
    "min_split_loss": "gamma",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
}


class Interval:
    """A numeric range printed as the toolkit prints it: ``[0, 1]``, ``(0, +inf)``."""

    def __init__(self, min_open=None, min_closed=None, max_open=None, max_closed=None):
        self.min_open = min_open
        self.min_closed = min_closed
        self.max_open = max_open
        self.max_closed = max_closed

    def __contains__(self, value):
        if self.min_open is not None and value <= self.min_open:
            return False
        if self.min_closed is not None and value < self.min_closed:
            return False
        if self.max_open is not None and value >= self.max_open:
            return False
        return not (self.max_closed is not None and value > self.max_closed)

    def __str__(self):
        if self.min_open is not None:
            low = "(%s, " % (self.min_open,)
        elif self.min_closed is not None:
            low = "[%s, " % (self.min_closed,)
        else:
            low = "(-inf, "
        if self.max_open is not None:
            high = "%s)" % (self.max_open,)
        elif self.max_closed is not None:
            high = "%s]" % (self.max_closed,)
        else:
            high = "+inf)"
        return low + high


class Choices:
    """A membership test that prints as a list (the toolkit's ``range_validator``)."""

    def __init__(self, values, test=None):
        self.values = list(values)
        self.test = test

    def __contains__(self, value):
        if self.test is not None:
            return self.test(value)
        return value in self.values

    def __str__(self):
        return str(self.values)


def _eval_metric_in_range(metric):
    if "<function" in metric:
        raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = metric.split("@")[0].strip(), metric.split("@")[1].strip()
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                "threshold should be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            float(threshold)
        except ValueError as exc:
            raise UserError(
                f"Threshold value 't' in '{name}@t' expects float input."
            ) from exc
        return True
    return metric in XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS


class Hyperparameter:
    """One declared hyperparameter: how it parses, its range and what it depends on."""

    kind = "text"

    def __init__(self, name, range=None, depends=None, check=None, required=False):
        self.name = name
        self.range = range
        self.depends = tuple(depends or ())
        self.check = check
        self.required = required

    def parse(self, value):
        return value

    def validate_range(self, value):
        if self.range is not None and value not in self.range:
            raise UserError(
                f"Hyperparameter {self.name}: {value} is not in {self.range}"
            )


class Integer(Hyperparameter):
    def parse(self, value):
        return int(value)


class Continuous(Hyperparameter):
    def parse(self, value):
        return float(value)


class Categorical(Hyperparameter):
    pass


class CommaList(Hyperparameter):
    def parse(self, value):
        return value.split(",")

    def validate_range(self, value):
        if any(item not in self.range for item in value):
            raise UserError(
                f"Hyperparameter {self.name}: value {value} not in range {self.range}"
            )


class NestedList(Hyperparameter):
    def parse(self, value):
        if isinstance(value, str):
            return ast.literal_eval(value)
        return value

    def validate_range(self, value):
        if any(item not in self.range for outer in value for item in outer):
            raise UserError(
                f"Hyperparameter {self.name}: value {value} not in range {self.range}"
            )


class Tuple(Hyperparameter):
    def parse(self, value):
        if isinstance(value, str):
            return ast.literal_eval(value)
        return value

    def validate_range(self, value):
        if any(item not in self.range for item in value):
            raise UserError(
                f"Hyperparameter {self.name}: value {value} not in range {self.range}"
            )


# ----------------------------------------------------------------- dependency checks
_TREE_UPDATERS = (
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "grow_quantile_histmaker",
)
_TREE_GROW_UPDATERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_quantile_histmaker")
_LINEAR_UPDATERS = ("shotgun", "coord_descent")


def _check_updater(value, dependencies):
    if dependencies.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in _LINEAR_UPDATERS):
            raise UserError(
                "Linear updater should be one of these options: %s."
                % ", ".join("'%s'" % u for u in _LINEAR_UPDATERS)
            )
    elif dependencies.get("process_type") == "update":
        if not all(u in ("refresh", "prune") for u in value):
            raise UserError(
                "process_type 'update' can only be used with updater 'refresh' and 'prune'"
            )
    else:
        if not all(u in _TREE_UPDATERS for u in value):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', "
                "'distcol', 'grow_histmaker', 'grow_skmaker', 'grow_quantile_histmaker', "
                "'sync', 'refresh', 'prune', 'shortgun', 'coord_descent'."
            )
        if sum(1 for u in value if u in _TREE_GROW_UPDATERS) > 1:
            raise UserError(
                "Only one tree grow plugin can be selected. Choose one from the"
                "following: 'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_skmaker'"
            )


def _check_objective(value, dependencies):
    if value in ("multi:softmax", "multi:softprob") and dependencies.get("num_class") is None:
        raise UserError("Require input for parameter 'num_class' for multi-classification")


def _check_eval_metric(value, dependencies):
    if "objective" not in dependencies:
        raise UserError(
            "Hyperparameter eval_metric needs the objective hyperparameter as well (SageMaker's "
            "XGBoost fails here with KeyError: 'objective'); set objective, for example "
            "reg:squarederror or binary:logistic"
        )
    objective = dependencies["objective"]
    if "auc" in value and not (objective.startswith("binary:") or objective.startswith("rank:")):
        raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in value and objective != "survival:aft":
        raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _check_monotone(value, dependencies):
    if value is not None and dependencies.get("tree_method") not in ("exact", "hist"):
        raise UserError(
            "monotone_constraints can be used only when the tree_method parameter is set to "
            "either 'exact' or 'hist'."
        )


def _check_interaction(value, dependencies):
    if value is not None and dependencies.get("tree_method") not in ("exact", "hist", "approx"):
        raise UserError(
            "interaction_constraints can be used only when the tree_method parameter is set to "
            "either 'exact', 'hist' or 'approx'."
        )


def _unit():
    return Interval(min_closed=0, max_closed=1)


def _at_least(low):
    return Interval(min_closed=low)


def declared():
    """Every hyperparameter of algorithm mode, in the image's declaration order."""
    return [
        Integer("num_round", _at_least(1), required=True),
        Integer("csv_weights", _unit()),
        Integer("early_stopping_rounds", _at_least(1)),
        Categorical("booster", ["gbtree", "gblinear", "dart"]),
        Integer("verbosity", Interval(min_closed=0, max_closed=3)),
        Integer("nthread", _at_least(1)),
        Continuous("eta", _unit()),
        Continuous("gamma", _at_least(0)),
        Integer("max_depth", _at_least(0)),
        Continuous("min_child_weight", _at_least(0)),
        Continuous("max_delta_step", _at_least(0)),
        Continuous("subsample", Interval(min_open=0, max_closed=1)),
        Continuous("colsample_bytree", Interval(min_open=0, max_closed=1)),
        Continuous("colsample_bylevel", Interval(min_open=0, max_closed=1)),
        Continuous("colsample_bynode", Interval(min_open=0, max_closed=1)),
        Continuous("lambda", _at_least(0)),
        Continuous("alpha", _at_least(0)),
        Categorical("tree_method", Choices(["auto", "exact", "approx", "hist", "gpu_hist"])),
        Continuous("sketch_eps", Interval(min_open=0, max_open=1)),
        Continuous("scale_pos_weight", Interval(min_open=0)),
        CommaList(
            "updater", UPDATER_RANGE, depends=("booster", "process_type"), check=_check_updater
        ),
        Categorical("dsplit", ["row", "col"]),
        Integer("refresh_leaf", _unit()),
        Categorical("process_type", ["default", "update"]),
        Categorical("grow_policy", ["depthwise", "lossguide"]),
        Integer("max_leaves", _at_least(0)),
        Integer("max_bin", _at_least(0)),
        Categorical("predictor", Choices(["auto", "cpu_predictor", "gpu_predictor"])),
        Tuple("monotone_constraints", [-1, 0, 1], depends=("tree_method",), check=_check_monotone),
        NestedList(
            "interaction_constraints",
            _at_least(1),
            depends=("tree_method",),
            check=_check_interaction,
        ),
        Categorical("sample_type", ["uniform", "weighted"]),
        Categorical("normalize_type", ["tree", "forest"]),
        Continuous("rate_drop", _unit()),
        Integer("one_drop", _unit()),
        Continuous("skip_drop", _unit()),
        Continuous("lambda_bias", _unit()),
        Continuous("tweedie_variance_power", Interval(min_open=1, max_open=2)),
        Categorical("objective", OBJECTIVES, depends=("num_class",), check=_check_objective),
        Integer("num_class", _at_least(2)),
        Continuous("base_score", _at_least(0)),
        Integer("_kfold", _at_least(2)),
        Integer("_num_cv_round", _at_least(1)),
        Categorical("_tuning_objective_metric", TUNING_METRICS),
        CommaList(
            "eval_metric",
            Choices(XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS, _eval_metric_in_range),
            depends=("objective",),
            check=_check_eval_metric,
        ),
        Integer("seed", Interval(min_open=-(2**31), max_open=2**31 - 1)),
        Integer("num_parallel_tree", _at_least(1)),
        Categorical("save_model_on_termination", ["true", "false"]),
        Categorical("aft_loss_distribution", ["normal", "logistic", "extreme"]),
        Continuous("aft_loss_distribution_scale", _at_least(0)),
        Categorical("deterministic_histogram", ["true", "false"]),
        Categorical("sampling_method", ["uniform", "gradient_based"]),
        Integer("prob_buffer_row", Interval(min_open=1.0)),
        Categorical("use_dask_gpu_training", ["true", "false"]),
    ]


def _dependency_order(names, table):
    """Names with every given dependency before its dependent (the toolkit's DFS order)."""
    stack = []
    visited = {name: False for name in names}

    def visit(name):
        visited[name] = True
        for dep in table[name].depends:
            if dep in visited and not visited[dep]:
                visit(dep)
        stack.insert(0, name)

    for name in names:
        if not visited[name]:
            visit(name)
    ordered = []
    while stack:
        ordered.append(stack.pop())
    return ordered


def validate(user_hyperparameters):
    """Check and convert ``hyperparameters.json`` content; return the xgboost parameters.

    Parameters
    ----------
    user_hyperparameters : dict
        Name -> string value.

    Returns
    -------
    dict
        Canonical names (aliases replaced) -> parsed values, in the order the image
        validates them.

    Raises
    ------
    UserError
        With the image's message for the first problem found.
    AlgorithmError
        When a range check itself fails unexpectedly.
    """
    table = dict((hp.name, hp) for hp in declared())
    given = {}
    for name, value in user_hyperparameters.items():
        given[ALIASES.get(name, name)] = value

    for name, hp in table.items():
        if hp.required and name not in given:
            raise UserError(f"Missing required hyperparameter: {name}")

    parsed = {}
    for name, value in given.items():
        hp = table.get(name)
        if hp is None:
            raise UserError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = hp.parse(value)
        except (ValueError, SyntaxError, TypeError, AttributeError) as exc:
            raise UserError(
                f"Hyperparameter {name}: could not parse value", caused_by=exc
            ) from exc

    for name, value in parsed.items():
        try:
            table[name].validate_range(value)
        except UserError:
            raise
        except Exception as exc:
            raise AlgorithmError(
                f"Hyperparameter {name}: unexpected failure when validating {value}",
                caused_by=exc,
            ) from exc

    validated = {}
    for name in _dependency_order(list(parsed), table):
        hp = table[name]
        if hp.check is not None:
            dependencies = dict((d, validated[d]) for d in hp.depends if d in validated)
            hp.check(parsed[name], dependencies)
        validated[name] = parsed[name]
    return validated
