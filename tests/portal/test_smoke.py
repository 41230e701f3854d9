def test_dashboard_renders_for_client(client, alice):
    client.force_login(alice)
    response = client.get("/dashboard/")
    assert response.status_code == 200


def test_workbench_for_officer(client, bob):
    client.force_login(bob)
    assert client.get("/workbench/").status_code == 200
