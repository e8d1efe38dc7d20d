//! The per-project API (`/api/v1`): the original server's paths and shapes, plus the rest
//! of Chroma's record operations. Handlers parse and validate, then call the store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::collection_config::{collection_metadata, index_settings, settings_update, Modifiable};
use super::core::{blocking, filters, nanos_now, open_project, project_name};
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::parse;
use super::results::{get_result_json, query_result_json};
use super::AppState;
use crate::store::filter::{Where, WhereDocument};
use crate::store::names::validate_name;
use crate::store::project::CollectionMeta;
use crate::store::query::{MissingIds, QueryRequest};
use crate::store::schema::Schema;
use crate::store::types::{Include, Space};
use crate::store::write::WriteMode;
use crate::store::{Project, DEFAULT_DATABASE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/api/v1/heartbeat", get(heartbeat))
        .route("/api/v1/version", get(version))
        .route("/api/v1/projects", get(list_projects))
        .route("/api/v1/{project}", axum::routing::delete(delete_project))
        .route(
            "/api/v1/{project}/collections",
            get(list_collections).post(create_collection),
        )
        .route(
            "/api/v1/{project}/collections/{collection}",
            get(get_collection)
                .put(modify_collection)
                .patch(modify_collection)
                .delete(delete_collection),
        )
        .route("/api/v1/{project}/collections/{collection}/add", post(add))
        .route(
            "/api/v1/{project}/collections/{collection}/upsert",
            post(upsert),
        )
        .route(
            "/api/v1/{project}/collections/{collection}/update",
            post(update),
        )
        .route(
            "/api/v1/{project}/collections/{collection}/delete",
            post(delete_records),
        )
        .route(
            "/api/v1/{project}/collections/{collection}/documents",
            axum::routing::delete(delete_records),
        )
        .route(
            "/api/v1/{project}/collections/{collection}/query",
            post(query),
        )
        .route(
            "/api/v1/{project}/collections/{collection}/get",
            get(get_by_params).post(get_by_body),
        )
        .route(
            "/api/v1/{project}/collections/{collection}/count",
            get(count),
        )
        .route("/api/v1/{project}/collections/{collection}/peek", get(peek))
}

async fn root(State(s): State<AppState>) -> Json<Value> {
    Json(json!({
        "message": "Quiver tenant server",
        "version": env!("CARGO_PKG_VERSION"),
        "base_workspace": s.registry.config.workspace.display().to_string(),
    }))
}

async fn heartbeat() -> Json<Value> {
    Json(json!({"status": "ok", "nanosecond heartbeat": nanos_now()}))
}

async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn list_projects(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let reg = Arc::clone(&s.registry);
    let list = blocking(move || Ok(reg.list()?)).await?;
    Ok(Json(json!({"projects": list})))
}

async fn delete_project(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let reg = Arc::clone(&s.registry);
    let n = project_name(&name)?;
    let existed = blocking(move || Ok(reg.delete_project(&n)?)).await?;
    if !existed {
        return Err(ApiError::not_found(format!(
            "Project [{name}] does not exist"
        )));
    }
    Ok(Json(
        json!({"project": name, "message": format!("Project '{name}' deleted successfully")}),
    ))
}

/// The Collection JSON of this API.
pub fn collection_json(p: &Project, meta: &CollectionMeta) -> ApiResult<Value> {
    let count = p.counters(&meta.id)?.count;
    Ok(json!({
        "name": meta.name,
        "id": meta.id.to_string(),
        "metadata": meta.metadata,
        "count": count,
        "dimension": meta.dimension,
        "configuration": {"hnsw": {
            "space": meta.hnsw.space.as_str(),
            "ef_construction": meta.hnsw.ef_construction,
            "ef_search": meta.hnsw.ef_search,
            "max_neighbors": meta.hnsw.max_neighbors,
        }},
        "indexing": match (p.indexing_status(&meta.id), count) {
            (Some((indexed, unindexed)), _) => json!({"indexed": indexed, "unindexed": unindexed}),
            (None, 0) => json!({"indexed": 0, "unindexed": 0}),
            // not loaded: nothing of it is pending in memory, and reading it just to say so
            // would cost a load
            (None, _) => Value::Null,
        },
    }))
}

async fn list_collections(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let state = s.clone();
    blocking(move || {
        let p = open_project(&state, &name)?;
        let cols = p
            .list_collections(DEFAULT_DATABASE)
            .iter()
            .map(|m| collection_json(&p, m))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Json(json!({"project": name, "collections": cols})))
    })
    .await
}

async fn create_collection(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let coll_name = parse::opt_string(&body, "name")?
        .ok_or_else(|| ApiError::invalid("Collection name is required"))?;
    validate_name("collection", &coll_name).map_err(ApiError::invalid)?;
    let metadata = parse::opt_object(&body, "metadata")?;
    let configuration = parse::opt_object(&body, "configuration")?;
    let get_or_create = parse::opt_bool(&body, "get_or_create")?.unwrap_or(false);
    // the original server defaulted this API's collections to cosine
    let settings = index_settings(configuration.as_ref(), metadata.as_ref(), Space::Cosine)
        .map_err(ApiError::as_invalid_argument)?;
    let schema = Schema::from_settings(&settings);
    let metadata = collection_metadata(metadata)?;
    let meta = CollectionMeta {
        id: Uuid::new_v4(),
        name: coll_name,
        database: DEFAULT_DATABASE.into(),
        metadata: metadata.filter(|m| !m.is_empty()),
        hnsw: settings.hnsw(),
        configuration: configuration.map(Value::Object).unwrap_or(Value::Null),
        schema: Some(schema),
        dimension: None,
    };
    let state = s.clone();
    blocking(move || {
        let p = open_project(&state, &name)?;
        // a project made by Chroma's create_tenant, or whose default database was
        // deleted through /api/v2, gets it back on the first collection made here
        p.ensure_database(DEFAULT_DATABASE)?;
        let (meta, _) = p.create_collection(meta, get_or_create)?;
        Ok(Json(
            json!({"project": name, "collection": collection_json(&p, &meta)?}),
        ))
    })
    .await
}

async fn get_collection(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let state = s.clone();
    blocking(move || {
        let p = open_project(&state, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        Ok(Json(
            json!({"project": name, "collection": collection_json(&p, &meta)?}),
        ))
    })
    .await
}

async fn modify_collection(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let new_name = parse::opt_string(&body, "new_name")?;
    if let Some(n) = &new_name {
        validate_name("collection", n).map_err(ApiError::invalid)?;
    }
    let new_metadata = collection_metadata(parse::opt_object(&body, "new_metadata")?)?;
    let new_configuration = parse::opt_object(&body, "new_configuration")?;
    let update = settings_update(new_configuration.as_ref(), Modifiable::SearchBreadth)
        .map_err(ApiError::as_invalid_argument)?;
    let state = s.clone();
    blocking(move || {
        let p = open_project(&state, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        let updated = p.modify_collection(&meta.id, |m| {
            if let Some(n) = new_name {
                m.name = n;
            }
            if let Some(md) = new_metadata {
                m.metadata = (!md.is_empty()).then_some(md);
            }
            m.apply_settings_update(&update);
        })?;
        Ok(Json(
            json!({"project": name, "collection": collection_json(&p, &updated)?}),
        ))
    })
    .await
}

async fn delete_collection(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let state = s.clone();
    blocking(move || {
        let p = open_project(&state, &name)?;
        p.delete_collection(DEFAULT_DATABASE, &coll)?;
        Ok(Json(json!({"project": name, "message": format!("Collection '{coll}' deleted successfully")})))
    })
    .await
}

async fn write(
    s: AppState,
    name: String,
    coll: String,
    body: Result<Bytes, BytesRejection>,
    mode: WriteMode,
    verb: &'static str,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let records = parse::record_inputs(&body, mode == WriteMode::Add)?;
    blocking(move || {
        let p = open_project(&s, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        let out = p.write(&meta, mode, records)?;
        Ok(Json(json!({"project": name, "collection": coll, verb: out.applied, "total_count": out.total})))
    })
    .await
}

async fn add(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(s, name, coll, body, WriteMode::Add, "added").await
}

async fn upsert(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(s, name, coll, body, WriteMode::Upsert, "upserted").await
}

async fn update(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(s, name, coll, body, WriteMode::Update, "updated").await
}

async fn delete_records(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let ids = parse::opt_string_list(&body, "ids")?;
    let (w, wd) = filters(&body)?;
    let limit = parse::opt_usize(&body, "limit")?;
    if ids.is_none() && w.is_none() && wd.is_none() {
        return Err(ApiError::invalid(
            "Delete needs at least one of 'ids', 'where' or 'where_document'",
        ));
    }
    blocking(move || {
        let p = open_project(&s, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        let out = p.delete_records(&meta, ids.as_deref(), w.as_ref(), wd.as_ref(), limit)?;
        Ok(Json(json!({"project": name, "collection": coll, "deleted": out.applied, "total_count": out.total})))
    })
    .await
}

struct GetArgs {
    ids: Option<Vec<String>>,
    where_: Option<Where>,
    where_document: Option<WhereDocument>,
    limit: Option<usize>,
    offset: usize,
    include: Include,
}

async fn run_get(s: AppState, name: String, coll: String, a: GetArgs) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_project(&s, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        let res = p.get_records(&meta, a.ids.as_deref(), a.where_.as_ref(), a.where_document.as_ref(), a.limit, a.offset, a.include)?;
        Ok(Json(json!({"project": name, "collection": coll, "results": get_result_json(&res.records, a.include)})))
    })
    .await
}

async fn get_by_body(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let (where_, where_document) = filters(&body)?;
    let args = GetArgs {
        ids: parse::opt_string_list(&body, "ids")?,
        where_,
        where_document,
        limit: parse::opt_usize(&body, "limit")?,
        offset: parse::opt_usize(&body, "offset")?.unwrap_or(0),
        include: parse::include(body.get("include"), Include::GET_DEFAULT)?,
    };
    run_get(s, name, coll, args).await
}

/// `GET …/get`: `ids` and `include` may repeat; `where`/`where_document` are JSON text.
async fn get_by_params(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let mut ids = Vec::new();
    let mut include = Vec::new();
    let mut single: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &params {
        match k.as_str() {
            "ids" => ids.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
            "include" => include.extend(v.split(',').filter(|s| !s.is_empty())),
            "limit" | "offset" | "where" | "where_document" => {
                single.insert(k.as_str(), v.as_str());
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "Unknown query parameter '{other}'"
                )))
            }
        }
    }
    let number = |k: &str| -> ApiResult<Option<usize>> {
        single
            .get(k)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::invalid(format!("Expected '{k}' to be a non-negative integer"))
                })
            })
            .transpose()
    };
    let json_param = |k: &str| -> ApiResult<Value> {
        single
            .get(k)
            .map(|v| {
                serde_json::from_str(v)
                    .map_err(|e| ApiError::invalid(format!("Malformed JSON in '{k}': {e}")))
            })
            .transpose()
            .map(|v| v.unwrap_or(Value::Null))
    };
    let where_ =
        Where::parse(&json_param("where")?).map_err(|e| ApiError::invalid(e.to_string()))?;
    let where_document = WhereDocument::parse(&json_param("where_document")?)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let args = GetArgs {
        ids: (!ids.is_empty()).then_some(ids),
        where_,
        where_document,
        limit: number("limit")?,
        offset: number("offset")?.unwrap_or(0),
        include: if include.is_empty() {
            Include::GET_DEFAULT
        } else {
            parse::include_names(&include)?
        },
    };
    run_get(s, name, coll, args).await
}

async fn peek(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = match params.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("Expected 'limit' to be a non-negative integer"))?,
        None => 10,
    };
    let args = GetArgs {
        ids: None,
        where_: None,
        where_document: None,
        limit: Some(limit),
        offset: 0,
        include: Include {
            embeddings: true,
            documents: true,
            metadatas: true,
            ..Include::default()
        },
    };
    run_get(s, name, coll, args).await
}

async fn count(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let p = open_project(&s, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        let count = p.counters(&meta.id)?.count;
        Ok(Json(
            json!({"project": name, "collection": coll, "count": count}),
        ))
    })
    .await
}

async fn query(
    State(s): State<AppState>,
    ApiPath((name, coll)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = parse::body_object(body)?;
    let embeddings = parse::embeddings_list(&body, "query_embeddings")?.ok_or_else(|| {
        ApiError::invalid(
            "Missing required field 'query_embeddings' (this server does not embed query_texts)",
        )
    })?;
    let n_results = parse::opt_usize(&body, "n_results")?.unwrap_or(10);
    let (where_, where_document) = filters(&body)?;
    let ids = parse::opt_string_list(&body, "ids")?;
    let include = parse::include(body.get("include"), Include::QUERY_DEFAULT)?;
    blocking(move || {
        let p = open_project(&s, &name)?;
        let meta = p.collection_meta(DEFAULT_DATABASE, &coll)?;
        let req = QueryRequest {
            embeddings: &embeddings,
            n_results,
            ids: ids.as_deref(),
            where_: where_.as_ref(),
            where_document: where_document.as_ref(),
            include,
            // this API answers among the ids that exist, whatever the filters
            missing_ids: MissingIds::Skip,
        };
        let (hits, _) = p.query(&meta, &req)?;
        Ok(Json(json!({"project": name, "collection": coll, "results": query_result_json(&hits, include)})))
    })
    .await
}
