"""Runs the AWS SAM transform (aws-sam-translator, the library `sam deploy` and
CloudFormation use) on a template and prints the resulting CloudFormation
resource types, one per line. Exits non-zero with the translator's message when
the transform fails. Used by template_test.go; no AWS call is made: the template
uses no managed policies, so the policy loader is never asked."""
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main(path):
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
    out = transform(template, params, NoManagedPolicies())
    for name, res in sorted(out["Resources"].items()):
        print(f"{name} {res['Type']}")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as e:  # the translator's InvalidDocumentException and friends
        print(f"SAM transform failed: {e}", file=sys.stderr)
        for cause in getattr(e, "causes", []) or []:
            print(f"  {cause}", file=sys.stderr)
        sys.exit(1)
