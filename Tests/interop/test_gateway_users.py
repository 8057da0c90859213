"""UserService end to end: grpcio against the built `gateway` on its embedded default (SQLite in a temporary
data directory, local-mode tokens). Also the auth interceptor as a client sees it."""

import concurrent.futures
import subprocess
import threading

import grpc
import pytest

from gateway_fixtures import BACKENDS, AWSPlace, all_pages, run_gateway, run_gateway_on


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(request, binaries, pb2, tmp_path_factory):
    with run_gateway_on(request.param, binaries, tmp_path_factory.mktemp("gateway-data"), request) as gw:
        yield gw


@pytest.fixture(scope="module")
def api(pb2):
    from gateway.user.v1 import user_service_pb2 as messages, user_service_pb2_grpc as services
    return messages, services


def stub(gateway, api):
    return api[1].UserServiceStub(gateway.channel)


def status_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


_counter = iter(range(1_000_000))


def new_user(gateway, api, uid=None, email=None, **fields):
    """Creates the user of a fresh account; returns (metadata, user)."""
    n = next(_counter)
    uid = uid or f"uid-{n}"
    md = gateway.tokens.metadata(uid)
    request = api[0].CreateUserRequest(email=email or f"user{n}@example.com", display_name=f"User {n}", **fields)
    return md, stub(gateway, api).CreateUser(request, metadata=md, timeout=10)


# --- auth, as a client sees it ----------------------------------------------------------------------------

def test_calls_without_a_valid_token_are_unauthenticated(gateway, api, pb2):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from firebase_fixtures import SigningKey
    users = stub(gateway, api)
    request = api[0].GetCurrentUserRequest()
    claims_of_another_key = SigningKey().sign({"sub": "x", "aud": "local", "iss": "https://securetoken.google.com/local"})
    for md in [(), (("authorization", "Bearer"),), (("authorization", "Bearer not.a.token"),),
               (("authorization", "Basic dXNlcjpwYXNz"),), (("authorization", f"Bearer {claims_of_another_key}"),),
               (("authorization", f"Bearer {gateway.tokens('uid-a', lifetime=-600)}"),)]:
        error = rpc_error(lambda: users.GetCurrentUser(request, metadata=md, timeout=10))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, md
        assert "eyJ" not in error.details()  # no token echoed
    # Health stays public.
    health = health_pb2_grpc.HealthStub(gateway.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def test_a_good_token_passes_and_admin_methods_need_the_claim(gateway, api):
    md, user = new_user(gateway, api)
    users = stub(gateway, api)
    assert users.GetCurrentUser(api[0].GetCurrentUserRequest(), metadata=md, timeout=10) == user
    error = rpc_error(lambda: users.ListUsers(api[0].ListUsersRequest(), metadata=md, timeout=10))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "admin" in error.details()
    admin = gateway.tokens.metadata("uid-admin", admin=True)
    assert users.CountUsers(api[0].CountUsersRequest(), metadata=admin, timeout=10).count >= 1


def test_tokens_from_the_gateway_token_command_are_accepted(gateway, api, binaries):
    token = subprocess.run([str(binaries / "gateway"), "token", "--uid", "uid-cli", "--data-dir", str(gateway.data_dir)],
                           check=True, capture_output=True, text=True).stdout.strip()
    md = (("authorization", f"Bearer {token}"),)
    created = stub(gateway, api).CreateUser(api[0].CreateUserRequest(email="cli@example.com", display_name="CLI"),
                                            metadata=md, timeout=10)
    assert created.firebase_uid == "uid-cli"


# --- users ------------------------------------------------------------------------------------------------

def test_user_lifecycle(gateway, api):
    from google.protobuf import field_mask_pb2
    m, users = api[0], stub(gateway, api)
    md, created = new_user(gateway, api, email="Ada.Lovelace@Example.com", photo_url="https://example.com/ada.png")
    assert len(created.id) == 26 and created.version == 1 and created.is_active
    assert created.created_at.seconds > 0 and created.created_at == created.updated_at
    assert users.GetUser(m.GetUserRequest(id=created.id), metadata=md, timeout=10) == created
    assert users.GetUserByEmail(m.GetUserByEmailRequest(email="ada.lovelace@EXAMPLE.com"), metadata=md, timeout=10) == created

    change = m.User(id=created.id, display_name="Ada King", email="ignored@example.com")
    updated = users.UpdateUser(m.UpdateUserRequest(user=change, update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                                                   expected_version=1), metadata=md, timeout=10)
    assert (updated.display_name, updated.email, updated.version) == ("Ada King", created.email, 2)
    # Only an admin changes is_active, and an inactive user is refused until an admin reactivates it.
    deactivate = m.UpdateUserRequest(user=m.User(id=created.id, is_active=False), update_mask=field_mask_pb2.FieldMask(paths=["is_active"]))
    error = rpc_error(lambda: users.UpdateUser(deactivate, metadata=md, timeout=10))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and error.details() == "only admins may change is_active"
    admin = gateway.tokens.metadata("uid-admin", admin=True)
    deactivated = users.UpdateUser(deactivate, metadata=admin, timeout=10)
    assert not deactivated.is_active and deactivated.version == 3
    error = rpc_error(lambda: users.GetCurrentUser(m.GetCurrentUserRequest(), metadata=md, timeout=10))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "inactive" in error.details()
    reactivated = users.UpdateUser(m.UpdateUserRequest(user=m.User(id=created.id, is_active=True), update_mask=field_mask_pb2.FieldMask(paths=["is_active"])),
                                   metadata=admin, timeout=10)
    assert reactivated.is_active and reactivated.version == 4

    error = rpc_error(lambda: users.UpdateUser(m.UpdateUserRequest(user=m.User(id=created.id), update_mask=field_mask_pb2.FieldMask(paths=["firebase_uid"])),
                                               metadata=md, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in error.details()

    users.DeleteUser(m.DeleteUserRequest(id=created.id, expected_version=4), metadata=md, timeout=10)
    assert status_of(lambda: users.GetUser(m.GetUserRequest(id=created.id), metadata=md, timeout=10)) == grpc.StatusCode.NOT_FOUND
    assert status_of(lambda: users.GetCurrentUser(m.GetCurrentUserRequest(), metadata=md, timeout=10)) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("fields, field", [
    ({"email": "not-an-email", "display_name": "X"}, "email"),
    ({"email": "x@example.com", "display_name": "  "}, "display_name"),
    ({"email": "x@example.com", "display_name": "X", "photo_url": "javascript:alert(1)"}, "photo_url"),
])
def test_invalid_fields_are_named(gateway, api, fields, field):
    md = gateway.tokens.metadata("uid-invalid")
    error = rpc_error(lambda: stub(gateway, api).CreateUser(api[0].CreateUserRequest(**fields), metadata=md, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: ")


def test_bad_ids_are_invalid_arguments(gateway, api):
    md, _ = new_user(gateway, api)
    for bad in ["", "nope", "01ARZ3NDEKTSV4RRFFQ69G5FA!", "81ARZ3NDEKTSV4RRFFQ69G5FAV"]:
        error = rpc_error(lambda: stub(gateway, api).GetUser(api[0].GetUserRequest(id=bad), metadata=md, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("id: ")


def test_duplicate_email_is_already_exists(gateway, api):
    new_user(gateway, api, email="twin@example.com")
    error = rpc_error(lambda: new_user(gateway, api, email="TWIN@example.COM"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


def test_concurrent_updates_with_one_expected_version_have_one_winner(gateway, api):
    from google.protobuf import field_mask_pb2
    m = api[0]
    md, user = new_user(gateway, api)
    barrier = threading.Barrier(20)

    def update(i):
        channel = grpc.insecure_channel(f"127.0.0.1:{gateway.port}")  # 20 clients, 20 connections
        try:
            request = m.UpdateUserRequest(user=m.User(id=user.id, display_name=f"Writer {i}"),
                                          update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                                          expected_version=user.version)
            barrier.wait()
            try:
                return api[1].UserServiceStub(channel).UpdateUser(request, metadata=md, timeout=20)
            except grpc.RpcError as e:
                return e
        finally:
            channel.close()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(update, range(20)))
    winners = [r for r in results if not isinstance(r, grpc.RpcError)]
    losers = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(winners) == 1 and winners[0].version == user.version + 1
    assert all(e.code() == grpc.StatusCode.ABORTED for e in losers), [e.details() for e in losers]
    assert all("expected version 1" in e.details() and "stored version is 2" in e.details() for e in losers)
    current = stub(gateway, api).GetUser(m.GetUserRequest(id=user.id), metadata=md, timeout=10)
    assert current.display_name == winners[0].display_name and current.version == 2


def test_callers_cannot_touch_each_others_users_or_sessions(gateway, api):
    from google.protobuf import field_mask_pb2
    m, users = api[0], stub(gateway, api)
    alice_md, alice = new_user(gateway, api)
    mallory_md, _ = new_user(gateway, api)
    session = users.CreateSession(m.CreateSessionRequest(device="Pixel 8"), metadata=alice_md, timeout=10)
    attempts = [
        lambda: users.GetUser(m.GetUserRequest(id=alice.id), metadata=mallory_md, timeout=10),
        lambda: users.UpdateUser(m.UpdateUserRequest(user=m.User(id=alice.id, display_name="pwned"),
                                                     update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
                                 metadata=mallory_md, timeout=10),
        lambda: users.DeleteUser(m.DeleteUserRequest(id=alice.id), metadata=mallory_md, timeout=10),
        lambda: users.RevokeSession(m.RevokeSessionRequest(id=session.id), metadata=mallory_md, timeout=10),
        lambda: users.CreateUser(m.CreateUserRequest(email="x@evil.example", display_name="x", firebase_uid=alice.firebase_uid),
                                 metadata=mallory_md, timeout=10),
    ]
    for attempt in attempts:
        assert status_of(attempt) == grpc.StatusCode.PERMISSION_DENIED
    # Someone else's address is answered as a missing one: the answer does not tell who has an account.
    for email in [alice.email, "nobody@example.com"]:
        error = rpc_error(lambda: users.GetUserByEmail(m.GetUserByEmailRequest(email=email), metadata=mallory_md, timeout=10))
        assert error.code() == grpc.StatusCode.NOT_FOUND and error.details() == f"user with email {email} not found"
    assert users.ListSessions(m.ListSessionsRequest(), metadata=mallory_md, timeout=10).sessions == []
    assert users.GetUser(m.GetUserRequest(id=alice.id), metadata=alice_md, timeout=10) == alice
    # An admin may act on anyone.
    admin = gateway.tokens.metadata("uid-root", admin=True)
    assert users.GetUser(m.GetUserRequest(id=alice.id), metadata=admin, timeout=10) == alice


def test_session_lifecycle(gateway, api):
    from google.protobuf import duration_pb2
    m, users = api[0], stub(gateway, api)
    md, user = new_user(gateway, api)
    made = [users.CreateSession(m.CreateSessionRequest(device=f"device {i}", ttl=duration_pb2.Duration(seconds=3600)),
                                metadata=md, timeout=10) for i in range(5)]
    assert all(s.user_id == user.id and s.expires_at.seconds - s.created_at.seconds == 3600 for s in made)
    revoked = users.RevokeSession(m.RevokeSessionRequest(id=made[0].id), metadata=md, timeout=10)
    assert revoked.revoked
    listed = [s for page in all_pages(lambda token: users.ListSessions(
        m.ListSessionsRequest(page_size=2, page_token=token), metadata=md, timeout=10)) for s in page.sessions]
    assert [s.id for s in listed] == [s.id for s in made[1:]]
    everything = users.ListSessions(m.ListSessionsRequest(include_revoked=True), metadata=md, timeout=10).sessions
    assert len(everything) == 5 and everything[0].revoked


# --- listing ----------------------------------------------------------------------------------------------

def test_listing_2500_users_returns_each_once_while_users_come_and_go(gateway, api):
    m, users = api[0], stub(gateway, api)
    admin = gateway.tokens.metadata("uid-lister", admin=True)

    def create(i):
        return users.CreateUser(m.CreateUserRequest(email=f"bulk{i}@example.com", display_name=f"Bulk {i}",
                                                    firebase_uid=f"uid-bulk-{i}"), metadata=admin, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        originals = list(pool.map(create, range(2500)))
    # Some of the originals are deleted while the listing runs; others are created.
    doomed = {u.id for u in originals[::10]}
    stop = threading.Event()
    churn_errors = []

    def churn():
        i = 0
        try:
            for victim in sorted(doomed):
                if stop.is_set():
                    break
                users.DeleteUser(m.DeleteUserRequest(id=victim), metadata=admin, timeout=30)
                create(10_000 + i)
                i += 1
        except grpc.RpcError as e:
            churn_errors.append(e)

    churner = threading.Thread(target=churn)
    churner.start()
    seen, pages = [], 0
    try:
        for page in all_pages(lambda token: users.ListUsers(m.ListUsersRequest(page_size=100, page_token=token),
                                                            metadata=admin, timeout=30)):
            seen += [u.id for u in page.users]
            pages += 1
    finally:
        stop.set()
        churner.join()
    assert not churn_errors
    assert len(seen) == len(set(seen)), "a user was listed twice"
    assert seen == sorted(seen)
    missing = {u.id for u in originals} - doomed - set(seen)
    assert not missing, f"{len(missing)} users that were never deleted were not listed"
    assert pages >= 25


def test_an_altered_page_token_is_invalid_argument(gateway, api):
    m, users = api[0], stub(gateway, api)
    admin = gateway.tokens.metadata("uid-lister", admin=True)
    for i in range(3):
        new_user(gateway, api)
    token = users.ListUsers(m.ListUsersRequest(page_size=1), metadata=admin, timeout=10).next_page_token
    assert token
    for position in range(len(token)):
        replacement = "A" if token[position] != "A" else "B"
        altered = token[:position] + replacement + token[position + 1:]
        error = rpc_error(lambda: users.ListUsers(m.ListUsersRequest(page_size=1, page_token=altered), metadata=admin, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("page_token: ")
    # A token for one filter is refused by another.
    error = rpc_error(lambda: users.ListUsers(m.ListUsersRequest(page_size=1, page_token=token, active_only=True),
                                              metadata=admin, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(lambda: users.ListUsers(m.ListUsersRequest(page_size=1001), metadata=admin, timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("backend", BACKENDS)
def test_users_survive_a_restart(binaries, pb2, api, tmp_path, request, backend):
    place = AWSPlace(request.getfixturevalue("moto")) if backend == "aws" else None
    with run_gateway_on(backend, binaries, tmp_path, request, place=place) as first:
        md, user = new_user(first, api)
    with run_gateway_on(backend, binaries, tmp_path, request, place=place) as second:
        again = stub(second, api).GetUser(api[0].GetUserRequest(id=user.id), metadata=second.tokens.metadata(user.firebase_uid), timeout=10)
        assert again == user
