#!/usr/bin/env python3
"""The template's own rules, which cfn-lint cannot know: run by `make lint-infra` after cfn-lint.

Each rule comes from ../shared/FACTS.md or issue #6: every API route present (the staff console
on an API of its own, its $default route to the console function), SQS consumers
report partial batch failures, visibility >= 6 x the consumer's timeout, maxReceiveCount >= 5,
Lambdas on provided.al2023/arm64 built by cargo-lambda, each function reads the base secret and
only the credential secrets it uses (create-order none) and is granted only the queues it uses, the sweeper runs every minute and the reconciler every
ReconcileInterval, the alarms exist (including payments only reconciliation found, and webhook refusals and
failures) and none uses a SEARCH expression, the agent image is pinned and its log permission
scoped.
Exits 1 listing every broken rule.
"""

import sys

from cfnlint.decode import cfn_yaml

EXPECTED_ROUTES = {
    ("GET", "/"): "CreateOrderFunction",
    ("GET", "/courses"): "CreateOrderFunction",
    ("POST", "/orders"): "CreateOrderFunction",
    ("GET", "/orders/{code}"): "CreateOrderFunction",
    ("GET", "/orders/{code}/qr.svg"): "CreateOrderFunction",
    ("POST", "/quote"): "CreateOrderFunction",
    ("POST", "/orders/{code}/resend"): "SelfServiceFunction",
    ("POST", "/orders/{code}/access"): "SelfServiceFunction",
    ("POST", "/webhooks/sepay"): "BankWebhookFunction",
    ("POST", "/webhooks/casso"): "BankWebhookFunction",
    ("POST", "/webhooks/payos"): "BankWebhookFunction",
}
# The staff console's own API (its paths clash with the buyer API's): every request to the
# console function. (API, route key) -> function, through AWS::ApiGatewayV2 routes.
CONSOLE_ROUTES = {
    ("ConsoleApi", "$default"): "ConsoleFunction",
}
# The credential secrets each function may read besides ConfigSecretArn: the public
# create-order reads only the payment links' (it opens each order's payOS link and virtual
# account), never the feeds' keys and tokens.
READS_SECRETS = {
    "CreateOrderFunction": {"PaymentLinksSecretArn"},
    "BankWebhookFunction": {"PaymentsSecretArn"},
    "ReconcileFunction": {"PaymentsSecretArn", "PaymentLinksSecretArn"},
    "EnrollFunction": {"LmsSecretArn"},
    "FinalizeFunction": {"DriveSecretArn", "MailSecretArn"},
    # It sends the payment reminders.
    "SweeperFunction": {"MailSecretArn"},
    "SelfServiceFunction": {"DriveSecretArn", "MailSecretArn"},
    # Access moves, resends and its sign-in links.
    "ConsoleFunction": {"DriveSecretArn", "MailSecretArn"},
}
# The queues each function may publish to (the outbox relay), by logical id.
PUBLISHES = {
    "CreateOrderFunction": set(),
    "BankWebhookFunction": {"EnrollQueue"},
    "ReconcileFunction": {"EnrollQueue"},
    "EnrollFunction": {"DeliverQueue"},
    "FinalizeFunction": set(),
    "SelfServiceFunction": set(),
    "SweeperFunction": {"EnrollQueue", "DeliverQueue", "FinalizeQueue"},
    # Retries and resends from the staff's pages.
    "ConsoleFunction": {"EnrollQueue", "DeliverQueue", "FinalizeQueue"},
}
# The dead-letter queues whose depth the console's dashboard shows (sqs:GetQueueAttributes).
CONSOLE_DEAD_LETTERS = {"EnrollDeadLetterQueue", "DeliverDeadLetterQueue", "FinalizeDeadLetterQueue"}


# Connections kept free for operators (coursedrop-admin, a migration, a console on the side).
OPERATOR_CONNECTIONS = 10


def connections(t, functions, problems):
    """The most database connections the stack can open at once, with the parameters'
    defaults: each function's instances at once (reserved concurrency, or its SQS source's
    maximum concurrency) times its pool (DATABASE_MAX_CONNECTIONS), the deliver tasks times
    theirs, and the operators' share. A function without a bound is a problem: a burst could
    open any number."""
    params = t["Parameters"]
    res = t["Resources"]

    def value(v):
        if isinstance(v, dict) and "Ref" in v:
            return int(params[v["Ref"]]["Default"])
        return int(v)

    used, lines = OPERATOR_CONNECTIONS, [f"operators {OPERATOR_CONNECTIONS}"]
    for fn in sorted(functions):
        props = res[fn]["Properties"]
        pool = props.get("Environment", {}).get("Variables", {}).get("DATABASE_MAX_CONNECTIONS")
        if pool is None:
            problems.append(f"{fn}: no DATABASE_MAX_CONNECTIONS, so its pool is whatever the code defaults to")
            continue
        instances = props.get("ReservedConcurrentExecutions")
        if instances is None:
            sqs = [e["Properties"] for e in props.get("Events", {}).values() if e.get("Type") == "SQS"]
            bounds = [e.get("ScalingConfig", {}).get("MaximumConcurrency") for e in sqs]
            if sqs and all(b is not None for b in bounds):
                instances = sum(value(b) for b in bounds)
        if instances is None:
            problems.append(f"{fn}: no reserved concurrency or SQS maximum concurrency bounds its instances")
            continue
        used += value(instances) * int(pool)
        lines.append(f"{fn} {value(instances)}x{pool}")
    task = res["DeliverTaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e.get("Value") for c in task for e in c.get("Environment", [])}
    pool = env.get("DATABASE_MAX_CONNECTIONS")
    if pool is None:
        problems.append("the deliver task has no DATABASE_MAX_CONNECTIONS")
    else:
        tasks = int(params["DeliverMaxTasks"]["Default"])
        used += tasks * int(pool)
        lines.append(f"deliver {tasks}x{pool}")
    return used, int(params["DatabaseMaxConnections"]["Default"]), lines


def main(path):
    t = cfn_yaml.load(path)
    res = t["Resources"]
    glob = t.get("Globals", {}).get("Function", {})
    problems = []

    def prop(fn, name, default=None):
        return res[fn]["Properties"].get(name, glob.get(name, default))

    functions = [k for k, v in res.items() if v["Type"] == "AWS::Serverless::Function"]
    if set(functions) != set(PUBLISHES):
        problems.append(f"functions are {sorted(functions)}, expected {sorted(PUBLISHES)}")

    routes = {}
    for fn in functions:
        if prop(fn, "Runtime") != "provided.al2023":
            problems.append(f"{fn}: runtime is not provided.al2023")
        if prop(fn, "Architectures") != ["arm64"]:
            problems.append(f"{fn}: not arm64")
        if res[fn].get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{fn}: BuildMethod is not rust-cargolambda")
        statements = [
            s for p in res[fn]["Properties"].get("Policies", []) if isinstance(p, dict) for s in p.get("Statement", [])
        ]
        actions = lambda s: s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        readable = set()
        for s in statements:
            if "secretsmanager:GetSecretValue" in actions(s):
                targets = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                for r in targets:
                    # A plain Ref, or Fn::If [Has…, Ref X, NoValue].
                    ref = r.get("Ref") if "Ref" in r else r.get("Fn::If", [None, {}])[1].get("Ref")
                    readable.add(ref)
        # Its own database user's secret, and no other function's.
        own_db = fn.replace("Function", "DatabaseSecret")
        needs = {"ConfigSecretArn", own_db} | READS_SECRETS.get(fn, set())
        if readable != needs:
            problems.append(f"{fn}: may read secrets {sorted(readable)}, needs exactly {sorted(needs)}")
        variables = res[fn]["Properties"].get("Environment", {}).get("Variables", {})
        if variables.get("DATABASE_SECRET_ID") != {"Ref": own_db}:
            problems.append(f"{fn}: DATABASE_SECRET_ID is not its own user's secret {own_db}")
        if res.get(own_db, {}).get("Type") != "AWS::SecretsManager::Secret":
            problems.append(f"{fn}: no secret {own_db} for its database user")
        secret_id = str(res[fn]["Properties"].get("Environment", {}).get("Variables", {}).get("APP_SECRET_ID", "ConfigSecretArn"))
        for extra in READS_SECRETS.get(fn, set()):
            if extra not in secret_id:
                problems.append(f"{fn}: APP_SECRET_ID does not name {extra}")
        for s in statements:
            if "*" in str(s.get("Resource")) or any(a.endswith(":*") or a == "*" for a in actions(s)):
                problems.append(f"{fn}: wildcard in {s}")
        sends = set()
        for s in statements:
            if "sqs:SendMessage" in actions(s):
                targets = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                sends |= {r["Fn::GetAtt"][0] for r in targets}
        if sends != PUBLISHES.get(fn, set()):
            problems.append(f"{fn}: may send to {sorted(sends)}, needs exactly {sorted(PUBLISHES.get(fn, set()))}")

        timeout = prop(fn, "Timeout", 3)
        for name, ev in res[fn]["Properties"].get("Events", {}).items():
            p = ev["Properties"]
            if ev["Type"] == "HttpApi":
                routes[(p["Method"], p["Path"])] = fn
            elif ev["Type"] == "SQS":
                if p.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                    problems.append(f"{fn}.{name}: no ReportBatchItemFailures")
                queue = p["Queue"]["Fn::GetAtt"][0]
                qp = res[queue]["Properties"]
                if qp.get("VisibilityTimeout", 30) < 6 * timeout:
                    problems.append(f"{queue}: visibility {qp.get('VisibilityTimeout', 30)} s < 6 x {fn}'s {timeout} s")
            elif ev["Type"] in ("Schedule", "ScheduleV2"):
                # The sweeper every minute; the reconciler every ReconcileInterval minutes.
                expected = {"SweeperFunction": "rate(1 minute)", "ReconcileFunction": {"Fn::Sub": "rate(${ReconcileInterval} minutes)"}}
                if p["ScheduleExpression"] != expected.get(fn):
                    problems.append(f"{fn}.{name}: schedule {p['ScheduleExpression']} is not {expected.get(fn)}")
    if routes != EXPECTED_ROUTES:
        problems.append(f"routes differ: missing {set(EXPECTED_ROUTES) - set(routes)}, extra {set(routes) - set(EXPECTED_ROUTES)}")

    # The console's API: routes to integrations to functions, and each function may be invoked
    # by the API that routes to it.
    console_routes = {}
    for k, v in res.items():
        if v["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        p = v["Properties"]
        target = str(p.get("Target", {}).get("Fn::Sub", ""))
        integration = res.get(target.removeprefix("integrations/${").removesuffix("}"), {}).get("Properties", {})
        console_routes[(p["ApiId"].get("Ref"), p["RouteKey"])] = integration.get("IntegrationUri", {}).get("Fn::GetAtt", [None])[0]
    if console_routes != CONSOLE_ROUTES:
        problems.append(f"console API routes are {console_routes}, expected {CONSOLE_ROUTES}")
    for (api, _), fn in CONSOLE_ROUTES.items():
        if not any(
            v["Type"] == "AWS::Lambda::Permission"
            and v["Properties"].get("FunctionName") == {"Ref": fn}
            and "${" + api + "}" in str(v["Properties"].get("SourceArn"))
            for v in res.values()
        ):
            problems.append(f"{api}: no permission to invoke {fn}")
    if "ConsoleFunction" in res:
        statements = [
            s for p in res["ConsoleFunction"]["Properties"].get("Policies", []) if isinstance(p, dict) for s in p.get("Statement", [])
        ]
        depth = {
            r["Fn::GetAtt"][0]
            for s in statements
            if "sqs:GetQueueAttributes" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        }
        if depth != CONSOLE_DEAD_LETTERS:
            problems.append(f"ConsoleFunction: may read the depth of {sorted(depth)}, needs exactly {sorted(CONSOLE_DEAD_LETTERS)}")
    if "ScheduleV2" not in str([res["SweeperFunction"]["Properties"]["Events"]]):
        problems.append("the sweeper has no schedule")

    for name in ("EnrollQueue", "DeliverQueue", "FinalizeQueue"):
        redrive = res[name]["Properties"].get("RedrivePolicy")
        if not redrive:
            problems.append(f"{name}: no dead-letter queue")
            continue
        if redrive["maxReceiveCount"] < 5:
            problems.append(f"{name}: maxReceiveCount {redrive['maxReceiveCount']} < 5")
        dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        watched = [
            k
            for k, v in res.items()
            if v["Type"] == "AWS::CloudWatch::Alarm"
            and v["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and dlq in str(v["Properties"].get("Dimensions"))
        ]
        if not watched:
            problems.append(f"{dlq}: no alarm on its messages")
        aged = [
            k
            for k, v in res.items()
            if v["Type"] == "AWS::CloudWatch::Alarm"
            and v["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
            and f"'{name}'" in str(v["Properties"].get("Dimensions"))
        ]
        if not aged:
            problems.append(f"{name}: no alarm on the age of its oldest message")
    if not any(v["Properties"].get("MetricName") == "StuckItems" for v in res.values() if v["Type"] == "AWS::CloudWatch::Alarm"):
        problems.append("no alarm on the sweeper's StuckItems metric")
    if not any(
        "PaymentsFoundByReconciliation" in str(v["Properties"].get("Metrics"))
        for v in res.values()
        if v["Type"] == "AWS::CloudWatch::Alarm"
    ):
        problems.append("no alarm on payments found only by reconciliation (webhooks failing)")
    if "ScheduleV2" not in str([res.get("ReconcileFunction", {}).get("Properties", {}).get("Events")]):
        problems.append("the reconciler has no schedule")

    alarms = {k: v["Properties"] for k, v in res.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    for name, a in alarms.items():
        # CloudWatch cannot alarm on a SEARCH expression: name each metric and sum them.
        if "SEARCH(" in str(a.get("Metrics")):
            problems.append(f"{name}: an alarm on a SEARCH expression (CloudWatch refuses it)")
    for metric in ("WebhooksRefused", "WebhookFailures"):
        if not any(metric in str(a.get("Metrics")) for a in alarms.values()):
            problems.append(f"no alarm on the webhook's {metric} (a wrong key refuses every payment silently)")

    # Every function's errors and throttles alarm (its own Errors and Throttles metrics).
    for fn in functions:
        for metric in ("Errors", "Throttles"):
            if not any(
                a.get("Namespace") == "AWS/Lambda"
                and a.get("MetricName") == metric
                and f"'Ref': '{fn}'" in str(a.get("Dimensions"))
                and "AlarmTopic" in str(a.get("AlarmActions"))
                for a in alarms.values()
            ):
                problems.append(f"{fn}: no alarm on its {metric} reaching the alarm topic")
    # The job's image by digest: a tag can be pushed again, a digest names the same bytes.
    if "@sha256:" not in t["Parameters"]["DeliverImageUri"].get("AllowedPattern", ""):
        problems.append("DeliverImageUri does not require an image digest (repository@sha256:...)")

    task = res["DeliverTaskDefinition"]["Properties"]
    for c in task["ContainerDefinitions"]:
        image = str(c["Image"])
        if image.endswith(":latest") or ("Ref" in image and "CloudWatchAgentImage" in image and t["Parameters"]["CloudWatchAgentImage"]["Default"].endswith(":latest")):
            problems.append(f"container {c['Name']}: image not pinned ({image})")
    agent = str(res["DeliverAgentPolicy"]["Properties"]["PolicyDocument"])
    if "log-group:*" in agent or "logs:CreateLogGroup" in agent:
        problems.append("the metrics agent may write any log group; scope it to DeliverMetricsLogs")
    if task.get("RequiresCompatibilities") != ["FARGATE"]:
        problems.append("the deliver job is not a Fargate task")
    target = res["DeliverScalableTarget"]["Properties"]
    if target["MinCapacity"] != 0:
        problems.append("the deliver service does not scale to zero")

    used, budget, lines = connections(t, functions, problems)
    if used > budget:
        problems.append(
            f"database connections: up to {used} at once ({'; '.join(lines)}) exceed DatabaseMaxConnections' default {budget}"
        )

    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    if not problems:
        print(
            f"{path}: {len(functions)} functions, {len(routes)} routes and the console API's {len(console_routes)}, "
            f"3 queues with dead-letter queues, at most {used} of {budget} database connections: rules hold"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "infra/template.yaml"))
