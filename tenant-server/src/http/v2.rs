//! The Chroma v2 API (`/api/v2`) as the official `chromadb` client calls it.
//! Tenant = project; databases and collections live inside the project's store, so the
//! same records are visible through `/api/v1` (default database) and `/api/v2`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::collection_config::{
    collection_metadata, index_settings, request_schema, settings_update, Modifiable,
};
use super::core::{blocking, filters, nanos_now};
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult, Flavour};
use super::parse;
use super::results::{get_result_json, query_result_json};
use super::AppState;
use crate::store::names::validate_name;
use crate::store::project::CollectionMeta;
use crate::store::query::{MissingIds, QueryRequest};
use crate::store::schema::Schema;
use crate::store::types::{Include, Space};
use crate::store::write::WriteMode;
use crate::store::{Project, ProjectName, StoreError};

/// The largest batch the client may send in one add/update/upsert.
pub const MAX_BATCH_SIZE: usize = 5461;

pub fn routes() -> Router<AppState> {
    const C: &str = "/api/v2/tenants/{tenant}/databases/{database}";
    Router::new()
        .route("/api/v2", get(heartbeat))
        .route("/api/v2/", get(heartbeat))
        .route("/api/v2/heartbeat", get(heartbeat))
        .route("/api/v2/version", get(version))
        .route("/api/v2/reset", post(reset))
        .route("/api/v2/pre-flight-checks", get(preflight))
        .route("/api/v2/auth/identity", get(identity))
        .route("/api/v2/healthcheck", get(healthcheck))
        .route("/api/v2/tenants", post(create_tenant))
        .route(
            "/api/v2/tenants/{tenant}",
            get(get_tenant).patch(update_tenant),
        )
        .route(
            "/api/v2/tenants/{tenant}/databases",
            get(list_databases).post(create_database),
        )
        .route(
            "/api/v2/tenants/{tenant}/databases/{database}",
            get(get_database).delete(delete_database),
        )
        .route(
            &format!("{C}/collections"),
            get(list_collections).post(create_collection),
        )
        .route(&format!("{C}/collections_count"), get(count_collections))
        .route(
            &format!("{C}/collections/by-id/{{id}}"),
            get(get_collection_by_id),
        )
        .route(
            &format!("{C}/collections/{{collection}}"),
            get(get_collection)
                .put(modify_collection)
                .delete(delete_collection),
        )
        .route(&format!("{C}/collections/{{collection}}/add"), post(add))
        .route(
            &format!("{C}/collections/{{collection}}/update"),
            post(update),
        )
        .route(
            &format!("{C}/collections/{{collection}}/upsert"),
            post(upsert),
        )
        .route(
            &format!("{C}/collections/{{collection}}/delete"),
            post(delete_records),
        )
        .route(&format!("{C}/collections/{{collection}}/count"), get(count))
        .route(
            &format!("{C}/collections/{{collection}}/get"),
            post(get_records),
        )
        .route(
            &format!("{C}/collections/{{collection}}/query"),
            post(query),
        )
        .route(&format!("{C}/collections/{{collection}}/fork"), post(fork))
        .route(
            &format!("{C}/collections/{{collection}}/fork_count"),
            get(fork_count),
        )
        .route(
            &format!("{C}/collections/{{collection}}/indexing_status"),
            get(indexing_status),
        )
        .route(
            &format!("{C}/collections/{{collection}}/search"),
            post(search),
        )
        .route(
            &format!("{C}/collections/{{collection}}/functions/attach"),
            post(functions),
        )
        .route(
            &format!("{C}/collections/{{collection}}/functions/{{name}}"),
            get(functions),
        )
        .route(
            &format!("{C}/collections/{{collection}}/attached_functions/{{name}}/detach"),
            post(functions),
        )
}

/// A store error in Chroma's names (see [`Flavour`]).
fn chroma_error(e: StoreError) -> ApiError {
    ApiError::from_store(e, Flavour::Chroma)
}

fn ok_empty() -> Json<Value> {
    Json(json!({}))
}

async fn heartbeat() -> Json<Value> {
    Json(json!({"nanosecond heartbeat": nanos_now()}))
}

async fn healthcheck() -> Json<Value> {
    Json(json!({"is_executor_ready": true, "is_log_client_ready": true}))
}

async fn version() -> Json<Value> {
    Json(json!(env!("CARGO_PKG_VERSION")))
}

async fn preflight() -> Json<Value> {
    Json(json!({"max_batch_size": MAX_BATCH_SIZE, "supports_base64_encoding": true}))
}

async fn identity() -> Json<Value> {
    Json(json!({"user_id": "", "tenant": "default_tenant", "databases": ["default_database"]}))
}

async fn reset(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    if !s.allow_reset {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "AuthorizationError", "Resetting is not allowed by this configuration (set ALLOW_RESET=true or --allow-reset)"));
    }
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        for p in reg.list().map_err(chroma_error)? {
            reg.delete_project(&p.name).map_err(chroma_error)?;
        }
        Ok(Json(json!(true)))
    })
    .await
}

fn name_of(body: &Map<String, Value>) -> ApiResult<String> {
    parse::opt_string(body, "name")?
        .ok_or_else(|| ApiError::invalid("Missing required field 'name'"))
}

/// The project of a tenant route. An unknown tenant is created on first use, with its
/// `default_database`, so that `HttpClient(tenant=...)` works on a new name; Chroma would
/// answer 404 instead. Collection routes open only the tenant: a database that does not
/// exist holds no collections (listing it answers none, naming a collection in it answers
/// that the collection does not exist), as in Chroma; creating a collection there is refused.
fn open_tenant(s: &AppState, tenant: &str) -> ApiResult<Arc<Project>> {
    let name = ProjectName::new(tenant).map_err(chroma_error)?;
    s.registry.project(&name).map_err(chroma_error)
}

async fn create_tenant(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let name = ProjectName::named("tenant", name_of(&body)?)?;
    blocking(move || {
        // as in Chroma, the new tenant has no database until one is created; projects
        // created by first use have their default database instead (`open_tenant`)
        let (_, created) = s.registry.provision_empty(&name).map_err(chroma_error)?;
        if !created {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ChromaError",
                format!("Tenant [{name}] already exists"),
            ));
        }
        Ok(ok_empty())
    })
    .await
}

async fn get_tenant(
    State(s): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        open_tenant(&s, &tenant)?;
        Ok(Json(json!({"name": tenant, "resource_name": null})))
    })
    .await
}

async fn update_tenant(
    State(s): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    parse::body_object(body)?;
    blocking(move || {
        open_tenant(&s, &tenant)?;
        Ok(ok_empty())
    })
    .await
}

fn database_json(tenant: &str, db: &crate::store::project::DatabaseMeta) -> Value {
    json!({"id": db.id.to_string(), "name": db.name, "tenant": tenant})
}

#[derive(serde::Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

impl Page {
    fn of<'a, T>(&self, items: &'a [T]) -> impl Iterator<Item = &'a T> {
        items
            .iter()
            .skip(self.offset.unwrap_or(0))
            .take(self.limit.unwrap_or(usize::MAX))
    }
}

async fn list_databases(
    State(s): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        let dbs: Vec<Value> = page
            .of(&p.databases())
            .map(|d| database_json(&tenant, d))
            .collect();
        Ok(Json(Value::Array(dbs)))
    })
    .await
}

async fn create_database(
    State(s): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let name = name_of(&body)?;
    validate_name("database", &name).map_err(ApiError::invalid)?;
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        match p.create_database(&name).map_err(chroma_error)? {
            Some(_) => Ok(ok_empty()),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "ChromaError",
                format!("Database [{name}] already exists"),
            )),
        }
    })
    .await
}

async fn get_database(
    State(s): State<AppState>,
    ApiPath((tenant, database)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        let db = p.database(&database).ok_or_else(|| {
            ApiError::not_found(format!(
                "Database [{database}] not found. Are you sure it exists?"
            ))
        })?;
        Ok(Json(database_json(&tenant, &db)))
    })
    .await
}

async fn delete_database(
    State(s): State<AppState>,
    ApiPath((tenant, database)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        p.delete_database(&database).map_err(chroma_error)?;
        Ok(ok_empty())
    })
    .await
}

fn collection_json(tenant: &str, meta: &CollectionMeta) -> Value {
    let schema = meta.effective_schema();
    json!({
        "id": meta.id.to_string(),
        "name": meta.name,
        "configuration_json": schema.settings().configuration_json(),
        "schema": schema,
        "metadata": meta.metadata,
        "dimension": meta.dimension,
        "tenant": tenant,
        "database": meta.database,
        "log_position": 0,
        "version": 0,
    })
}

/// Collection metadata as Chroma takes it: not empty, `null` values dropped.
fn v2_collection_metadata(md: Option<Map<String, Value>>) -> ApiResult<Option<Map<String, Value>>> {
    if md.as_ref().is_some_and(Map::is_empty) {
        return Err(ApiError::invalid(
            "Validation error: metadata: Metadata cannot be empty",
        ));
    }
    collection_metadata(md)
}

async fn list_collections(
    State(s): State<AppState>,
    ApiPath((tenant, database)): ApiPath<(String, String)>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        let cols: Vec<Value> = page
            .of(&p.list_collections(&database))
            .map(|m| collection_json(&tenant, m))
            .collect();
        Ok(Json(Value::Array(cols)))
    })
    .await
}

async fn count_collections(
    State(s): State<AppState>,
    ApiPath((tenant, database)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        Ok(Json(json!(p.list_collections(&database).len())))
    })
    .await
}

async fn create_collection(
    State(s): State<AppState>,
    ApiPath((tenant, database)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let name = name_of(&body)?;
    validate_name("collection", &name).map_err(ApiError::invalid)?;
    let metadata = v2_collection_metadata(parse::opt_object(&body, "metadata")?)?;
    let configuration = parse::opt_object(&body, "configuration")?;
    let settings = index_settings(configuration.as_ref(), metadata.as_ref(), Space::L2)?;
    let schema = Schema::reconcile(request_schema(&body)?.as_ref(), &settings)
        .map_err(|e| chroma_error(e.into()))?;
    let get_or_create = parse::opt_bool(&body, "get_or_create")?.unwrap_or(false);
    let hnsw = schema.settings().hnsw();
    let meta = CollectionMeta {
        id: Uuid::new_v4(),
        name,
        database: database.clone(),
        metadata,
        hnsw,
        configuration: configuration.map(Value::Object).unwrap_or(Value::Null),
        schema: Some(schema),
        dimension: None,
    };
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        let (meta, _) = p
            .create_collection(meta, get_or_create)
            .map_err(|e| match e {
                StoreError::DatabaseNotFound(_) => {
                    ApiError::invalid(format!("Database [{database}] does not exist"))
                }
                e => chroma_error(e),
            })?;
        Ok(Json(collection_json(&tenant, &meta)))
    })
    .await
}

async fn get_collection(
    State(s): State<AppState>,
    ApiPath((tenant, database, collection)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        let meta = p
            .collection_meta(&database, &collection)
            .map_err(chroma_error)?;
        Ok(Json(collection_json(&tenant, &meta)))
    })
    .await
}

fn parse_collection_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("Collection ID is not a valid UUIDv4"))
}

/// The collection `id` of `database`, as the record routes address it.
/// The project and the collection of a record route (`…/collections/{id}/…`).
fn open_collection(
    s: &AppState,
    tenant: &str,
    database: &str,
    id: &str,
) -> ApiResult<(Arc<Project>, CollectionMeta)> {
    let p = open_tenant(s, tenant)?;
    let meta = collection_by_id(&p, database, id)?;
    Ok((p, meta))
}

fn collection_by_id(p: &Project, database: &str, id: &str) -> ApiResult<CollectionMeta> {
    let uuid = parse_collection_id(id)?;
    match p.collection_meta_by_id(&uuid) {
        Ok(m) if m.database == database => Ok(m),
        _ => Err(ApiError::not_found(format!(
            "Collection [{id}] does not exist"
        ))),
    }
}

async fn get_collection_by_id(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (_, meta) = open_collection(&s, &tenant, &database, &id)?;
        Ok(Json(collection_json(&tenant, &meta)))
    })
    .await
}

async fn modify_collection(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): ApiPath<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let new_name = parse::opt_string(&body, "new_name")?;
    if let Some(n) = &new_name {
        validate_name("collection", n).map_err(ApiError::invalid)?;
    }
    let new_metadata = v2_collection_metadata(parse::opt_object(&body, "new_metadata")?)?;
    let new_configuration = parse::opt_object(&body, "new_configuration")?;
    let update = settings_update(new_configuration.as_ref(), Modifiable::Chroma)?;
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        p.modify_collection(&meta.id, |m| {
            if let Some(n) = new_name {
                m.name = n;
            }
            if let Some(md) = new_metadata {
                m.metadata = Some(md);
            }
            m.apply_settings_update(&update);
        })
        .map_err(chroma_error)?;
        Ok(ok_empty())
    })
    .await
}

async fn delete_collection(
    State(s): State<AppState>,
    ApiPath((tenant, database, collection)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_tenant(&s, &tenant)?;
        p.delete_collection(&database, &collection)
            .map_err(chroma_error)?;
        Ok(ok_empty())
    })
    .await
}

type RecordPath = ApiPath<(String, String, String)>;

async fn write(
    s: AppState,
    (tenant, database, id): (String, String, String),
    body: Result<Bytes, BytesRejection>,
    mode: WriteMode,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let records = parse::record_inputs(&body, mode != WriteMode::Update)?;
    if mode == WriteMode::Add {
        // a `null` metadata value removes a key on upsert and update; an add has nothing to
        // remove, and Chroma refuses it as a body that does not deserialize
        if let Some(i) = records.iter().position(|r| {
            r.metadata
                .as_ref()
                .is_some_and(|md| md.values().any(Option::is_none))
        }) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ChromaError",
                format!(
                    "Failed to deserialize the JSON body into the target type: metadatas[{i}]: \
                     data did not match any variant of untagged enum MetadataValue"
                ),
            ));
        }
    }
    if records.len() > MAX_BATCH_SIZE {
        return Err(ApiError::invalid(format!(
            "Cannot submit more than {MAX_BATCH_SIZE} records in one batch, got {}",
            records.len()
        )));
    }
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        p.write(&meta, mode, records).map_err(chroma_error)?;
        Ok(ok_empty())
    })
    .await
}

async fn add(
    State(s): State<AppState>,
    ApiPath(path): RecordPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((
        StatusCode::CREATED,
        write(s, path, body, WriteMode::Add).await?,
    ))
}

async fn update(
    State(s): State<AppState>,
    ApiPath(path): RecordPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(s, path, body, WriteMode::Update).await
}

async fn upsert(
    State(s): State<AppState>,
    ApiPath(path): RecordPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(s, path, body, WriteMode::Upsert).await
}

async fn delete_records(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): RecordPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let ids = parse::opt_string_list(&body, "ids")?;
    let (w, wd) = filters(&body)?;
    let limit = parse::opt_usize(&body, "limit")?;
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        if ids.is_none() && w.is_none() && wd.is_none() {
            // Chroma deletes nothing when no condition is given
            return Ok(Json(json!({"deleted": 0})));
        }
        let out = p
            .delete_records(&meta, ids.as_deref(), w.as_ref(), wd.as_ref(), limit)
            .map_err(chroma_error)?;
        // Chroma counts the ids asked for when only ids are given, whether or not they
        // were there; with a filter, the records it removed
        let deleted = match (&ids, &w, &wd) {
            (Some(ids), None, None) => ids.len(),
            _ => out.applied,
        };
        Ok(Json(json!({"deleted": deleted})))
    })
    .await
}

async fn count(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): RecordPath,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        Ok(Json(json!(
            p.counters(&meta.id).map_err(chroma_error)?.count
        )))
    })
    .await
}

async fn get_records(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): RecordPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let ids = parse::opt_string_list(&body, "ids")?;
    let (w, wd) = filters(&body)?;
    let limit = parse::opt_usize(&body, "limit")?;
    let offset = parse::opt_usize(&body, "offset")?.unwrap_or(0);
    let include = parse::include(body.get("include"), Include::GET_DEFAULT)?;
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        let res = p
            .get_records(
                &meta,
                ids.as_deref(),
                w.as_ref(),
                wd.as_ref(),
                limit,
                offset,
                include,
            )
            .map_err(chroma_error)?;
        Ok(Json(get_result_json(&res.records, include)))
    })
    .await
}

async fn query(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): RecordPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let embeddings = parse::embeddings_list(&body, "query_embeddings")?
        .ok_or_else(|| ApiError::invalid("Missing required field 'query_embeddings'"))?;
    let n_results = parse::opt_usize(&body, "n_results")?.unwrap_or(10);
    let (w, wd) = filters(&body)?;
    let ids = parse::opt_string_list(&body, "ids")?;
    let include = parse::include(body.get("include"), Include::QUERY_DEFAULT)?;
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        let req = QueryRequest {
            embeddings: &embeddings,
            n_results,
            ids: ids.as_deref(),
            where_: w.as_ref(),
            where_document: wd.as_ref(),
            include,
            missing_ids: MissingIds::FailUnfiltered,
        };
        let (hits, _) = p.query(&meta, &req).map_err(chroma_error)?;
        Ok(Json(query_result_json(&hits, include)))
    })
    .await
}

fn unsupported(status: StatusCode, kind: &'static str, message: &str) -> ApiError {
    ApiError::new(status, kind, message)
}

async fn fork(ApiPath(_): RecordPath) -> ApiError {
    unsupported(
        StatusCode::NOT_IMPLEMENTED,
        "ChromaError",
        "Collection forking is unsupported for local chroma",
    )
}

async fn fork_count(ApiPath(_): RecordPath) -> ApiError {
    unsupported(
        StatusCode::NOT_IMPLEMENTED,
        "ChromaError",
        "Fork count is unsupported for local chroma",
    )
}

/// What the store knows of a collection's indexing, in the fields the client reads: the
/// records in its graph and those written but not yet in it (which queries still find,
/// by exact scan). Chroma counts operations; here one record is one operation.
async fn indexing_status(
    State(s): State<AppState>,
    ApiPath((tenant, database, id)): RecordPath,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (p, meta) = open_collection(&s, &tenant, &database, &id)?;
        let (indexed, unindexed) = p.indexing_progress(&meta).map_err(chroma_error)?;
        let total = indexed + unindexed;
        let progress = if total == 0 {
            1.0
        } else {
            indexed as f64 / total as f64
        };
        Ok(Json(json!({
            "num_indexed_ops": indexed,
            "num_unindexed_ops": unindexed,
            "total_ops": total,
            "op_indexing_progress": progress,
        })))
    })
    .await
}

async fn search(ApiPath(_): RecordPath) -> ApiError {
    unsupported(
        StatusCode::NOT_IMPLEMENTED,
        "ChromaError",
        "Search is not implemented for local executor",
    )
}

async fn functions(ApiQuery(_): ApiQuery<HashMap<String, String>>) -> ApiError {
    unsupported(
        StatusCode::NOT_IMPLEMENTED,
        "ChromaError",
        "Attached functions are unsupported for local chroma",
    )
}
