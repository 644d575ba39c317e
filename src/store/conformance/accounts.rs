//! Cases for users, sessions (API keys), organizations and provisioner keys,
//! and for a fresh store taking writes.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::fixture::user;
use crate::domain::{Role, Tags};
use crate::store::{ApiKey, ProvisionerKey, Store, StoreError, User};

/// A store that just opened takes writes (`/readyz` asks this).
pub async fn fresh_store_takes_writes(store: &dyn Store) {
    store.check_writable().await.expect("a fresh store takes writes");
    assert_eq!(store.count_users().await.expect("count"), 0, "a fresh store has no users");
    store.insert_user(&user("first", vec![])).await.expect("a write");
    store.check_writable().await.expect("still writable after a write");
}

/// Two setups racing for the first user: exactly one wins, and it keeps the
/// roles it was inserted with; a later first user is refused too.
pub async fn first_user_is_unique_under_a_race(store: &dyn Store) {
    let (alice, bob) = (user("alice", vec![Role::Owner]), user("bob", vec![Role::Owner]));
    let (a, b) = tokio::join!(store.insert_first_user(&alice), store.insert_first_user(&bob));
    let winner = match (a, b) {
        (Ok(()), Err(StoreError::Conflict(_))) => &alice,
        (Err(StoreError::Conflict(_)), Ok(())) => &bob,
        other => panic!("one first user, the other refused with Conflict: {other:?}"),
    };
    assert_eq!(store.count_users().await.expect("count"), 1);
    assert_eq!(store.user_by_id(winner.id).await.expect("first").roles, vec![Role::Owner]);
    let late = user("carol", vec![Role::Owner]);
    assert!(
        matches!(store.insert_first_user(&late).await, Err(StoreError::Conflict(_))),
        "only one first user"
    );
    assert!(matches!(store.user_by_id(late.id).await, Err(StoreError::NotFound)));
    store.insert_user(&late).await.expect("an ordinary insert still works");
    assert_eq!(store.count_users().await.expect("count"), 2);
}

/// Usernames and emails are found whatever their case, and are unique
/// whatever their case.
pub async fn user_lookups_ignore_case(store: &dyn Store) {
    let mut alice = user("Alice", vec![]);
    alice.email = "Alice@Example.com".into();
    store.insert_user(&alice).await.expect("alice");
    let got = store.user_by_id(alice.id).await.expect("by id");
    let fields = |u: &User| (u.username.clone(), u.email.clone(), u.password_hash.clone());
    assert_eq!(fields(&got), fields(&alice), "stored as given");
    assert_eq!(store.user_by_username("aLICE").await.expect("by name").id, alice.id);
    assert_eq!(store.user_by_username("Alice").await.expect("by name").username, "Alice");
    assert_eq!(store.user_by_email("alice@example.COM").await.expect("by email").id, alice.id);
    for missing in [
        store.user_by_username("bob").await,
        store.user_by_email("bob@example.com").await,
        store.user_by_id(Uuid::new_v4()).await,
    ] {
        assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    }
    let same_name = user("ALICE", vec![]);
    assert!(matches!(store.insert_user(&same_name).await, Err(StoreError::Conflict(_))));
    let same_email = User { email: "ALICE@example.com".into(), ..user("alice2", vec![]) };
    assert!(matches!(store.insert_user(&same_email).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.count_users().await.expect("count"), 1);
}

/// Site roles are stored as given and replaced whole; an unknown user's
/// roles are `NotFound`.
pub async fn user_roles_are_replaced(store: &dyn Store) {
    let member = user("bob", vec![]);
    store.insert_user(&member).await.expect("member");
    assert!(store.user_by_id(member.id).await.expect("member").roles.is_empty());
    let roles = [Role::TemplateAdmin, Role::UserAdmin];
    store.set_user_roles(member.id, &roles).await.expect("set roles");
    assert_eq!(store.user_by_username("BOB").await.expect("bob").roles, roles.to_vec());
    store.set_user_roles(member.id, &[Role::Owner]).await.expect("replace roles");
    assert_eq!(store.user_by_id(member.id).await.expect("bob").roles, vec![Role::Owner]);
    store.set_user_roles(member.id, &[]).await.expect("clear roles");
    assert!(store.user_by_id(member.id).await.expect("bob").roles.is_empty());
    assert!(matches!(
        store.set_user_roles(Uuid::new_v4(), &roles).await,
        Err(StoreError::NotFound)
    ));
}

/// A session key reads back as stored until deleted; deleting twice is
/// harmless; ids are unique.
pub async fn api_keys_insert_get_delete(store: &dyn Store) {
    let owner = user("alice", vec![]);
    store.insert_user(&owner).await.expect("user");
    let now = Utc::now();
    let key = ApiKey {
        id: "abcdefghij".into(),
        user_id: owner.id,
        hashed_secret: vec![7; 32],
        created_at: now,
        expires_at: now + Duration::days(1),
    };
    store.insert_api_key(&key).await.expect("insert");
    let got = store.api_key(&key.id).await.expect("get");
    assert_eq!((got.user_id, &got.hashed_secret), (owner.id, &key.hashed_secret));
    assert_eq!(got.expires_at.timestamp(), key.expires_at.timestamp(), "expiry kept");
    let twin = ApiKey { hashed_secret: vec![8; 32], ..key.clone() };
    assert!(matches!(store.insert_api_key(&twin).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.api_key("unknown").await, Err(StoreError::NotFound)));
    store.delete_api_key(&key.id).await.expect("delete");
    assert!(matches!(store.api_key(&key.id).await, Err(StoreError::NotFound)));
    store.delete_api_key(&key.id).await.expect("deleting again is harmless");
}

/// The default organization is made on first use and the same after; it is
/// found by id and by name (any case), and every user belongs to it.
pub async fn default_organization_is_created_once(store: &dyn Store) {
    let (a, b) = tokio::join!(store.default_organization(), store.default_organization());
    let (a, b) = (a.expect("org"), b.expect("org"));
    assert_eq!(a.id, b.id, "one default organization, even when asked twice at once");
    assert!(a.is_default);
    assert_eq!(store.default_organization().await.expect("again").id, a.id);
    assert_eq!(store.organization_by_id(a.id).await.expect("by id"), a);
    let upper = a.name.to_uppercase();
    assert_eq!(store.organization_by_name(&upper).await.expect("by name").id, a.id);
    assert!(matches!(store.organization_by_id(Uuid::new_v4()).await, Err(StoreError::NotFound)));
    assert!(matches!(store.organization_by_name("nope").await, Err(StoreError::NotFound)));
    let member = user("bob", vec![]);
    store.insert_user(&member).await.expect("user");
    let orgs = store.organizations_of_user(member.id).await.expect("orgs");
    assert_eq!(orgs.iter().map(|o| o.id).collect::<Vec<_>>(), [a.id]);
}

/// Provisioner keys: listed by name, a name once per organization, deleting
/// one by name returns it.
pub async fn provisioner_keys_by_name_per_organization(store: &dyn Store) {
    let org = store.default_organization().await.expect("org");
    let key = |name: &str, tags: Tags| ProvisionerKey {
        id: Uuid::new_v4(),
        organization_id: org.id,
        name: name.into(),
        hashed_secret: name.as_bytes().to_vec(),
        tags,
        created_at: Utc::now(),
    };
    let gpu = key("gpu", Tags::from([("pool".to_owned(), "gpu".to_owned())]));
    let arm = key("arm", Tags::new());
    store.insert_provisioner_key(&gpu).await.expect("gpu");
    store.insert_provisioner_key(&arm).await.expect("arm");
    let got = store.provisioner_key(gpu.id).await.expect("by id");
    assert_eq!(
        (&got.name, &got.tags, &got.hashed_secret),
        (&gpu.name, &gpu.tags, &gpu.hashed_secret)
    );
    let names: Vec<_> =
        store.provisioner_keys(org.id).await.expect("list").into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["arm", "gpu"], "by name");
    assert!(store.provisioner_keys(Uuid::new_v4()).await.expect("other org").is_empty());
    let twin = key("gpu", Tags::new());
    assert!(
        matches!(store.insert_provisioner_key(&twin).await, Err(StoreError::Conflict(_))),
        "a name once per organization"
    );
    let gone = store.delete_provisioner_key(org.id, "gpu").await.expect("delete");
    assert_eq!((gone.id, gone.tags), (gpu.id, gpu.tags), "the deleted key is returned");
    assert!(matches!(store.provisioner_key(gpu.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_provisioner_key(org.id, "gpu").await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.delete_provisioner_key(Uuid::new_v4(), "arm").await,
        Err(StoreError::NotFound)
    ));
    let names: Vec<_> =
        store.provisioner_keys(org.id).await.expect("list").into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["arm"]);
    store.insert_provisioner_key(&key("gpu", Tags::new())).await.expect("the name is free again");
}
