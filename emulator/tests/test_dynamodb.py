"""DynamoDB (the copy ledger): served by moto, identified and IAM-checked by the layer."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, error_code
from test_iam import allow, as_role, make_role

TABLE = "snapferry-copy-ledger"


def create_table(ddb: Any, name: str = TABLE) -> dict[str, Any]:
    return ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]


def take_slot(copy_id: str, limit: int = 1) -> list[dict[str, Any]]:
    """One copy takes a slot: the counter goes up only while below the limit, and
    the copy's own item is written only if it is new (both or neither)."""
    return [
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "slots#us-east-1#rds"}, "sk": {"S": "counter"}},
                "UpdateExpression": "ADD taken :one",
                "ConditionExpression": "attribute_not_exists(taken) OR taken < :limit",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
            }
        },
        {
            "Put": {
                "TableName": TABLE,
                "Item": {"pk": {"S": "copies#us-east-1#rds"}, "sk": {"S": copy_id}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]


def counter(ddb: Any) -> dict[str, Any] | None:
    return ddb.get_item(TableName=TABLE, Key={"pk": {"S": "slots#us-east-1#rds"}, "sk": {"S": "counter"}}).get("Item")


def raw_error(client: Any) -> dict[str, Any]:
    """Records the status and JSON body of the client's responses (the last one wins)."""
    seen: dict[str, Any] = {}

    def keep(http_response: Any, **_: Any) -> None:
        seen.update(status=http_response.status_code, body=http_response.content)

    client.meta.events.register("after-call.dynamodb", keep)
    return seen


def test_conditional_transaction_takes_the_last_slot_once(emu, accounts):
    (acct,) = accounts(1)
    ddb = emu.client("dynamodb", acct)
    table = create_table(ddb)
    assert table["TableArn"] == f"arn:aws:dynamodb:{REGION}:{acct}:table/{TABLE}"
    ddb.transact_write_items(TransactItems=take_slot("copy-1"))
    with pytest.raises(ClientError) as exc:
        ddb.transact_write_items(TransactItems=take_slot("copy-2"))
    assert error_code(exc) == "TransactionCanceledException"
    reasons = [r["Code"] for r in exc.value.response["CancellationReasons"]]
    assert reasons == ["ConditionalCheckFailed", "None"]
    assert counter(ddb)["taken"] == {"N": "1"}
    copies = ddb.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "copies#us-east-1#rds"}}
    )["Items"]
    assert [c["sk"]["S"] for c in copies] == ["copy-1"]  # the cancelled transaction wrote nothing
    logged = [(r["service"], r["operation"], r["status"], r["error_code"]) for r in emu.requests_for(acct) if r["service"] == "dynamodb"]
    assert logged == [
        ("dynamodb", "CreateTable", 200, None),
        ("dynamodb", "TransactWriteItems", 200, None),
        ("dynamodb", "TransactWriteItems", 400, "TransactionCanceledException"),
        ("dynamodb", "GetItem", 200, None),
        ("dynamodb", "Query", 200, None),
    ]


def test_transaction_needs_every_item_action(emu, accounts):
    (acct,) = accounts(1)
    ddb = emu.client("dynamodb", acct)
    create_table(ddb)
    role = make_role(emu, acct, allow("dynamodb:UpdateItem", "dynamodb:GetItem"))
    step = as_role(emu, acct, role, "dynamodb")
    seen = raw_error(step)
    with pytest.raises(ClientError) as exc:
        step.transact_write_items(TransactItems=take_slot("copy-1"))  # an Update and a Put
    err = exc.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDeniedException", 400)
    assert err["Error"]["Message"] == (
        f"User: arn:aws:sts::{acct}:assumed-role/{role}/step is not authorized to perform: dynamodb:PutItem "
        "because no identity-based policy allows the dynamodb:PutItem action"
    )
    assert seen["status"] == 400 and b'"__type": "com.amazon.coral.service#AccessDeniedException"' in seen["body"]
    assert counter(ddb) is None  # refused as a whole: not even the allowed Update ran
    # Updates only: allowed.
    update = take_slot("copy-1")[:1]
    step.transact_write_items(TransactItems=update)
    assert counter(ddb)["taken"] == {"N": "1"}
    # TransactGetItems: the Get items need dynamodb:GetItem, which the role holds.
    got = step.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": update[0]["Update"]["Key"]}}])
    assert got["Responses"][0]["Item"]["taken"] == {"N": "1"}
    # The single-item call is checked as itself.
    with pytest.raises(ClientError) as exc:
        step.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    assert error_code(exc) == "AccessDeniedException" and "dynamodb:PutItem" in exc.value.response["Error"]["Message"]


def test_log_names_the_item_actions_of_a_transaction(emu, accounts):
    (acct,) = accounts(1)
    create_table(emu.client("dynamodb", acct))
    role = make_role(emu, acct, allow("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"))
    step = as_role(emu, acct, role, "dynamodb")
    items = take_slot("copy-1")
    items.append({"Put": {"TableName": TABLE, "Item": {"pk": {"S": "budget#src"}, "sk": {"S": "copy-1"}}}})
    step.transact_write_items(TransactItems=items)  # Update, Put, Put
    step.transact_write_items(TransactItems=[{"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "budget#src"}, "sk": {"S": "copy-1"}}}}])
    step.update_item(TableName=TABLE, Key={"pk": {"S": "x"}, "sk": {"S": "y"}}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "1"}})
    with pytest.raises(ClientError):
        step.transact_write_items(
            TransactItems=[{"ConditionCheck": {"TableName": TABLE, "Key": {"pk": {"S": "x"}, "sk": {"S": "y"}}, "ConditionExpression": "attribute_exists(v)"}}]
        )
    logged = [(r["operation"], r["actions"], r["error_code"]) for r in emu.requests_for(acct) if r["principal"] == role]
    assert logged == [
        ("TransactWriteItems", ["dynamodb:UpdateItem", "dynamodb:PutItem"], None),
        ("TransactWriteItems", ["dynamodb:DeleteItem"], None),
        ("UpdateItem", ["dynamodb:UpdateItem"], None),
        ("TransactWriteItems", ["dynamodb:ConditionCheckItem"], "AccessDeniedException"),
    ]
    everything = [a for r in emu.requests_for(acct) for a in r["actions"]]
    assert "dynamodb:TransactWriteItems" not in everything and "dynamodb:CreateTable" in everything


def test_tables_are_per_account(emu, accounts):
    a, b = accounts(2)
    ddb_a, ddb_b = emu.client("dynamodb", a), emu.client("dynamodb", b)
    create_table(ddb_a)
    with pytest.raises(ClientError) as exc:
        ddb_b.describe_table(TableName=TABLE)
    assert error_code(exc) == "ResourceNotFoundException"
    assert create_table(ddb_b)["TableArn"] == f"arn:aws:dynamodb:{REGION}:{b}:table/{TABLE}"
    ddb_a.transact_write_items(TransactItems=take_slot("copy-a"))
    assert counter(ddb_a)["taken"] == {"N": "1"} and counter(ddb_b) is None
    ddb_b.transact_write_items(TransactItems=take_slot("copy-b"))  # b's slot is its own
    assert ddb_a.describe_table(TableName=TABLE)["Table"]["TableArn"].split(":")[4] == a
    assert {(r["account"], r["region"]) for r in emu.requests_for(b) if r["service"] == "dynamodb"} == {(b, REGION)}
