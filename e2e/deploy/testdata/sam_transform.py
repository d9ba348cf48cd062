"""Runs the AWS SAM transform (aws-sam-translator, the library `sam deploy` and
CloudFormation use) on a template and prints the resulting CloudFormation
resource types, one per line; with --json, the whole transformed template as
JSON. Name=Value arguments set parameters, as `sam deploy --parameter-overrides`
does. Exits non-zero with the translator's message when the transform fails.
Used by the tests in e2e/deploy; no AWS call is made: the template uses no
managed policies, so the policy loader is never asked."""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main(path, as_json=False, overrides=None):
    os.environ["AWS_DEFAULT_REGION"] = "eu-west-1"  # the translator asks; nothing is called
    with open(path) as f:
        template = yaml_parse(f.read())
    # What `sam package` does before CloudFormation sees the template.
    for res in template.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://bucket/bootstrap.zip"
    params = {
        "AzureDevOpsOrg": "contoso",
        "AzureDevOpsWebhook": "port_trigger",
        "PortSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:port/azure-relay-AbCdEf",
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::StackName": "port-azure-relay",
        "AWS::URLSuffix": "amazonaws.com",
    }
    params.update(overrides or {})
    out = transform(template, params, NoManagedPolicies())
    if as_json:
        print(json.dumps(out, default=str))
        return
    for name, res in sorted(out["Resources"].items()):
        print(f"{name} {res['Type']}")


if __name__ == "__main__":
    try:
        args = sys.argv[2:]
        main(sys.argv[1], "--json" in args, dict(a.split("=", 1) for a in args if "=" in a))
    except Exception as e:  # the translator's InvalidDocumentException and friends
        print(f"SAM transform failed: {e}", file=sys.stderr)
        for cause in getattr(e, "causes", []) or []:
            print(f"  {cause}", file=sys.stderr)
        sys.exit(1)
