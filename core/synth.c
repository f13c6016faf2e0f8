/* core/synth.c - a seeded synthetic two-domain dataset in the C2DSR layout.
 *
 * The generative story, chosen so that models have something to learn beyond popularity:
 *   - categories are shared by both domains (X food-like, Y kitchen-like: "Tea" holds
 *     green tea in X and kettles in Y), and titles are built from per-category word lists,
 *     so text-aware models can see the category;
 *   - within a (domain, category) item popularity is Zipf-like (weight 1/rank);
 *   - each user likes 1-3 categories and has a preference for domain Y;
 *   - each step picks a domain at random, then either follows a fixed per-item successor
 *     (a hidden chain only a sequence model can learn), stays in the category of the
 *     previous item, or draws a new category from the user's interests.
 * Everything comes from one tema_rng stream and integer/IEEE arithmetic only (no libm),
 * so the same seed gives byte-identical files on every machine. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "util.h"

typedef struct theme {
    const char *name;
    const char *x_mod[6], *x_noun[6], *x_size[5];
    const char *y_mod[6], *y_noun[6], *y_size[5];
} theme;

/* Words of each category in the food-like domain X and the kitchen-like domain Y.
 * An empty size means "no size" in the title. */
static const theme THEMES[] = {
    {"Tea",
     {"Organic", "Decaf", "Premium", "Loose Leaf", "Herbal", "Cold Brew"},
     {"Green Tea Bags", "Earl Grey Black Tea", "Chamomile Tea", "Matcha Green Tea Powder", "Peppermint Tea", "Chai Tea Latte Mix"},
     {"24 Count", "100 Count", "4 oz Tin", "Pack of 6", "16 oz"},
     {"Stainless Steel", "Glass", "Cast Iron", "Ceramic", "Electric", "Whistling"},
     {"Tea Kettle", "Teapot with Infuser", "Tea Infuser", "Tea Cup and Saucer Set", "Tea Storage Tin", "Gooseneck Kettle"},
     {"1.7 Liter", "32 oz", "Set of 4", "2 Quart", ""}},
    {"Coffee",
     {"Dark Roast", "Medium Roast", "Organic", "Colombian", "Espresso", "Decaf"},
     {"Whole Bean Coffee", "Ground Coffee", "Coffee K-Cup Pods", "Instant Coffee", "Cold Brew Coffee Concentrate", "Coffee Creamer"},
     {"12 oz Bag", "2 lb Bag", "24 Count", "32 oz", "Pack of 3"},
     {"Programmable", "Stainless Steel", "Manual", "Electric", "Glass", "Ceramic"},
     {"Coffee Maker", "Burr Coffee Grinder", "French Press", "Pour Over Coffee Dripper", "Milk Frother", "Espresso Machine"},
     {"12 Cup", "34 oz", "8 Cup", "Black", ""}},
    {"Baking",
     {"Unbleached", "Organic", "Gluten Free", "Pure", "Natural", "Premium"},
     {"All-Purpose Flour", "Cane Sugar", "Baking Powder", "Vanilla Extract", "Yellow Cake Mix", "Active Dry Yeast"},
     {"5 lb Bag", "2 lb", "4 oz", "Pack of 3", "10 oz"},
     {"Nonstick", "Silicone", "Aluminum", "Heavy Duty", "Professional", "Glass"},
     {"Baking Sheet", "Muffin Pan", "Stand Mixer", "Measuring Cups Set", "Rolling Pin", "Round Cake Pan"},
     {"Set of 3", "12 Cup", "9 Inch", "5 Quart", ""}},
    {"Pasta",
     {"Whole Wheat", "Organic", "Imported Italian", "Gluten Free", "Traditional", "Roasted Garlic"},
     {"Spaghetti", "Penne Rigate", "Marinara Sauce", "Basil Pesto", "Lasagna Noodles", "Alfredo Sauce"},
     {"16 oz", "24 oz Jar", "Pack of 4", "1 lb", "12 oz"},
     {"Stainless Steel", "Manual", "Electric", "Nonstick", "Heavy Duty", "Wooden"},
     {"Pasta Maker Machine", "Colander", "Pasta Pot with Strainer Lid", "Ravioli Cutter", "Spaghetti Server", "Cheese Grater"},
     {"8 Quart", "Set of 2", "5 Quart", "Silver", ""}},
    {"Spices",
     {"Smoked", "Organic", "Ground", "Whole", "Hot", "Premium"},
     {"Paprika", "Black Peppercorns", "Cinnamon Sticks", "Cumin Seed", "Garlic Powder", "Curry Powder"},
     {"4 oz Jar", "16 oz", "2.5 oz", "Pack of 2", "1 lb Bag"},
     {"Electric", "Magnetic", "Stainless Steel", "Acrylic", "Ceramic", "Adjustable"},
     {"Spice Grinder", "Spice Rack Organizer", "Salt and Pepper Mill Set", "Mortar and Pestle", "Spice Jars", "Herb Scissors"},
     {"Set of 12", "20 Jar", "Set of 2", "6 oz", ""}},
    {"Chocolate & Sweets",
     {"Dark", "Milk", "Belgian", "Sea Salt Caramel", "Sugar Free", "Assorted"},
     {"Chocolate Bar", "Chocolate Truffles", "Cocoa Powder", "Gummy Bears", "Hard Candy", "Chocolate Chips"},
     {"3.5 oz", "Pack of 12", "8 oz Bag", "1 lb", "24 Count"},
     {"Silicone", "Electric", "Stainless Steel", "Nonstick", "Ceramic", "Professional"},
     {"Candy Mold", "Chocolate Fondue Set", "Cookie Cutter Set", "Candy Thermometer", "Piping Bag Kit", "Dessert Plates"},
     {"Set of 6", "2 Pack", "3 Cup", "Set of 24", ""}},
    {"Grilling",
     {"Hickory Smoked", "Sweet and Spicy", "Texas Style", "Applewood", "Honey", "Kansas City"},
     {"BBQ Sauce", "Dry Rub Seasoning", "Beef Jerky", "Steak Marinade", "Grilling Spice Blend", "Hot Sauce"},
     {"18 oz Bottle", "6 oz", "3.25 oz Bag", "Pack of 2", "12 oz"},
     {"Cast Iron", "Stainless Steel", "Heavy Duty", "Nonstick", "Reversible", "Digital"},
     {"Grill Pan", "BBQ Tongs", "Meat Thermometer", "Grill Basket", "Basting Brush", "Smoker Box"},
     {"12 Inch", "Set of 3", "16 Inch", "Black", ""}},
    {"Breakfast",
     {"Honey Oat", "Maple", "Organic", "Whole Grain", "Blueberry", "Buttermilk"},
     {"Granola", "Pancake Mix", "Oatmeal Packets", "Breakfast Cereal", "Maple Syrup", "Peanut Butter"},
     {"12 oz", "32 oz", "Pack of 4", "10 Count", "16 oz Jar"},
     {"Belgian", "Nonstick", "Compact", "Wide Slot", "Stainless Steel", "Electric"},
     {"Waffle Maker", "Toaster", "Egg Poacher", "Griddle", "Pancake Batter Dispenser", "Breakfast Sandwich Maker"},
     {"2 Slice", "4 Slice", "Silver", "Black", ""}},
    {"Smoothies",
     {"Organic", "Raw", "Unsweetened", "Freeze Dried", "Superfood", "Tropical"},
     {"Chia Seeds", "Protein Powder", "Coconut Water", "Acai Powder", "Dried Mango", "Flax Seed Meal"},
     {"1 lb", "2 lb Tub", "Pack of 12", "8 oz", "16 oz"},
     {"Personal", "High Speed", "Cordless", "Stainless Steel", "Compact", "Professional"},
     {"Blender", "Citrus Juicer", "Smoothie Cups", "Juice Extractor", "Immersion Blender", "Ice Cube Trays"},
     {"20 oz", "1000 Watt", "Set of 4", "64 oz", ""}},
    {"Rice & Asian",
     {"Jasmine", "Basmati", "Organic", "Low Sodium", "Spicy", "Toasted"},
     {"Rice", "Soy Sauce", "Ramen Noodles", "Sesame Oil", "Sriracha Sauce", "Seaweed Snacks"},
     {"5 lb Bag", "10 oz Bottle", "Pack of 12", "16 oz", "2 lb"},
     {"Carbon Steel", "Bamboo", "Electric", "Nonstick", "Ceramic", "Stainless Steel"},
     {"Wok", "Rice Cooker", "Chopsticks", "Bamboo Steamer", "Sushi Making Kit", "Rice Bowls"},
     {"14 Inch", "6 Cup", "Set of 10", "10 Inch", ""}},
    {"Drinks & Cocktails",
     {"Sparkling", "Classic", "Organic", "Craft", "Margarita", "Premium"},
     {"Cocktail Mixer", "Tonic Water", "Cocktail Cherries", "Aromatic Bitters", "Ginger Beer", "Lemonade Mix"},
     {"32 oz Bottle", "Pack of 12", "10 oz Jar", "5 oz", "4 Pack"},
     {"Crystal", "Stainless Steel", "Stemless", "Lever", "Insulated", "Glass"},
     {"Wine Glasses", "Cocktail Shaker Set", "Corkscrew Wine Opener", "Ice Bucket", "Wine Decanter", "Beer Mugs"},
     {"Set of 4", "24 oz", "Set of 2", "750 ml", ""}},
    {"Snacks",
     {"Butter", "Kettle Cooked", "Sea Salt", "White Cheddar", "Roasted", "Honey Roasted"},
     {"Popcorn Kernels", "Potato Chips", "Mixed Nuts", "Pretzels", "Almonds", "Trail Mix"},
     {"2 lb Jar", "Pack of 24", "16 oz", "1 oz Bags", "40 oz"},
     {"Hot Air", "Stovetop", "Microwave", "Bamboo", "Glass", "Stainless Steel"},
     {"Popcorn Popper", "Popcorn Machine", "Snack Bowls", "Serving Tray", "Chip and Dip Server", "Food Storage Containers"},
     {"Set of 4", "6 Quart", "2 Pack", "Large", ""}},
    {"Soups",
     {"Organic", "Low Sodium", "Homestyle", "Hearty", "Vegetarian", "Classic"},
     {"Chicken Bone Broth", "Chicken Noodle Soup", "Bouillon Cubes", "Tomato Soup", "Lentil Soup", "Miso Soup Mix"},
     {"32 oz Carton", "Pack of 12", "18.6 oz Can", "25 Count", "8 oz"},
     {"Enameled Cast Iron", "Stainless Steel", "Ceramic", "Nonstick", "Programmable", "Heavy Duty"},
     {"Dutch Oven", "Stock Pot", "Slow Cooker", "Soup Ladle", "Pressure Cooker", "Soup Bowls"},
     {"6 Quart", "12 Quart", "Set of 4", "8 Quart", ""}},
    {"Preserves",
     {"Strawberry", "Apricot", "Organic", "Wild Blueberry", "Orange", "Seedless Raspberry"},
     {"Jam", "Fruit Preserves", "Marmalade", "Raw Honey", "Fruit Spread", "Dill Pickles"},
     {"12 oz Jar", "18 oz", "Pack of 2", "16 oz", "10 oz"},
     {"Wide Mouth", "Regular Mouth", "Glass", "Stainless Steel", "Airtight", "Vintage"},
     {"Mason Jars", "Canning Funnel", "Jar Lifter", "Canning Pot", "Storage Jars", "Jam Pot"},
     {"16 oz", "Set of 12", "32 oz", "9 Piece", ""}},
};
enum { N_THEMES = sizeof THEMES / sizeof THEMES[0] };

static const char *const X_BRANDS[] = {"Harvest Valley", "Golden Acre", "Nature's Table", "Blue Ridge Farms",
                                       "Sunny Orchard", "Pantry Classics", "Green Fields", "Old Mill"};
static const char *const Y_BRANDS[] = {"HomeCraft", "ChefLine", "KitchenPro", "Copper Creek",
                                       "Urban Cook", "Everyday Chef", "Maison Table", "IronLeaf"};

void tema_synth_defaults(tema_synth_opts *o)
{
    /* Small enough to train in minutes on 2 cores, large enough for stable metrics. */
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->n_users = 3000;
    o->n_x = 1000;
    o->n_y = 1200;
    o->n_categories = 12;
    o->min_len = 5;
    o->max_len = 15;
    o->valid_frac = 0.2;
    o->test_frac = 0.2;
}

/* ------------------------------------------------------------------------------------
 * Text helpers over tema_sb (core/util.h). */

static void sb_int(tema_sb *b, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) > 0);
    if (v < 0) tmp[n++] = '-';
    for (int i = 0; i < n / 2; i++) {
        char c = tmp[i];
        tmp[i] = tmp[n - 1 - i];
        tmp[n - 1 - i] = c;
    }
    tema_sb_addn(b, tmp, (size_t)n);
}

/* "YYYY-MM-DD HH:MM:SS" of ts in UTC+8, as the C2DSR files print dates (civil-from-days,
 * H. Hinnant; no time-zone database involved). */
static void sb_date(tema_sb *b, int64_t ts)
{
    int64_t s = ts + 8 * 3600;
    int64_t days = s >= 0 ? s / 86400 : (s - 86399) / 86400;
    int64_t sod = s - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
    tema_sb_printf(b, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld", (long long)y, (long long)m, (long long)d,
              (long long)(sod / 3600), (long long)(sod / 60 % 60), (long long)(sod % 60));
}

/* Base-36 digits of v, fixed width (upper case, like ASINs and reviewer ids). */
static void sb_base36(tema_sb *b, uint64_t v, int width)
{
    char tmp[32];
    for (int i = width - 1; i >= 0; i--) {
        tmp[i] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[v % 36];
        v /= 36;
    }
    tema_sb_addn(b, tmp, (size_t)width);
}

/* ------------------------------------------------------------------------------------
 * The generator. */

typedef struct pool {      /* items of one (domain, category), most popular first */
    int32_t *item;
    double *cum;           /* cumulative Zipf weights 1/(rank+1) */
    int32_t n;
} pool;

typedef struct world {
    int32_t n_x, n_y, n_cat;
    int32_t *cat;          /* [n_x+n_y] category of each item */
    int32_t *succ[2];      /* [n_x+n_y] the hidden next item in domain X / Y */
    pool *pools;           /* [2*n_cat] */
} world;

static int32_t pool_draw(const pool *p, tema_rng *r)
{
    double u = tema_rng_uniform(r) * p->cum[p->n - 1];
    int32_t lo = 0, hi = p->n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (p->cum[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return p->item[lo];
}

/* An item of domain dom in category c (Zipf), or any item of dom if c has none there. */
static int32_t draw_item(const world *w, int dom, int32_t c, tema_rng *r)
{
    const pool *p = &w->pools[dom * w->n_cat + c];
    if (p->n > 0) return pool_draw(p, r);
    return dom == 0 ? (int32_t)tema_rng_below(r, (uint64_t)w->n_x)
                    : w->n_x + (int32_t)tema_rng_below(r, (uint64_t)w->n_y);
}

static void world_free(world *w)
{
    free(w->cat);
    free(w->succ[0]);
    free(w->succ[1]);
    if (w->pools)
        for (int32_t i = 0; i < 2 * w->n_cat; i++) {
            free(w->pools[i].item);
            free(w->pools[i].cum);
        }
    free(w->pools);
}

static tema_status world_build(world *w, const tema_synth_opts *o, tema_rng *r, tema_err *err)
{
    memset(w, 0, sizeof *w);
    w->n_x = o->n_x;
    w->n_y = o->n_y;
    w->n_cat = o->n_categories;
    int32_t n = o->n_x + o->n_y;
    w->cat = malloc((size_t)n * sizeof *w->cat);
    w->succ[0] = malloc((size_t)n * sizeof *w->succ[0]);
    w->succ[1] = malloc((size_t)n * sizeof *w->succ[1]);
    w->pools = calloc((size_t)2 * (size_t)w->n_cat, sizeof *w->pools);
    int32_t *fill = calloc((size_t)2 * (size_t)w->n_cat, sizeof *fill);
    if (!w->cat || !w->succ[0] || !w->succ[1] || !w->pools || !fill) goto oom;
    /* The first n_cat items of a domain cover every category once, the rest are random,
     * so no category is empty unless the domain has fewer items than categories. */
    for (int32_t i = 0; i < n; i++) {
        int dom = i >= o->n_x;
        int32_t local = dom ? i - o->n_x : i;
        int32_t c = local < w->n_cat ? local : (int32_t)tema_rng_below(r, (uint64_t)w->n_cat);
        w->cat[i] = c;
        w->pools[dom * w->n_cat + c].n++;
    }
    for (int32_t k = 0; k < 2 * w->n_cat; k++) {
        pool *p = &w->pools[k];
        if (p->n == 0) continue;
        p->item = malloc((size_t)p->n * sizeof *p->item);
        p->cum = malloc((size_t)p->n * sizeof *p->cum);
        if (!p->item || !p->cum) goto oom;
    }
    for (int32_t i = 0; i < n; i++) {
        int k = (i >= o->n_x) * w->n_cat + w->cat[i];
        w->pools[k].item[fill[k]++] = i;
    }
    for (int32_t k = 0; k < 2 * w->n_cat; k++) {
        pool *p = &w->pools[k];
        /* Popularity rank = a random order, so popular items are spread over the ids. */
        for (int32_t i = p->n - 1; i > 0; i--) {
            int32_t j = (int32_t)tema_rng_below(r, (uint64_t)i + 1);
            int32_t t = p->item[i];
            p->item[i] = p->item[j];
            p->item[j] = t;
        }
        double acc = 0;
        for (int32_t i = 0; i < p->n; i++) p->cum[i] = acc += 1.0 / (double)(i + 1);
    }
    /* Successors are uniform within the category: the chain carries information that
     * item popularity does not. */
    for (int32_t i = 0; i < n; i++)
        for (int dom = 0; dom < 2; dom++) {
            const pool *p = &w->pools[dom * w->n_cat + w->cat[i]];
            int32_t s;
            if (p->n == 0) s = draw_item(w, dom, w->cat[i], r);
            else {
                s = p->item[tema_rng_below(r, (uint64_t)p->n)];
                for (int k = 0; s == i && p->n > 1 && k < 8; k++) s = p->item[tema_rng_below(r, (uint64_t)p->n)];
            }
            w->succ[dom][i] = s;
        }
    free(fill);
    return TEMA_OK;
oom:
    free(fill);
    world_free(w);
    return tema_fail(err, TEMA_ENOMEM, "out of memory generating %d items", n);
}

static int contains(const int32_t *a, int32_t n, int32_t x)
{
    for (int32_t i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

/* One user's sequence (length len, distinct items where the catalogue allows). */
static void user_sequence(const world *w, tema_rng *r, int32_t len, int32_t *seq)
{
    int32_t fav[3];
    double fav_w[3], total = 0;
    int n_fav = 1 + (int)tema_rng_below(r, 3);
    if (n_fav > w->n_cat) n_fav = w->n_cat;
    for (int k = 0; k < n_fav; k++) {
        int32_t c;
        do c = (int32_t)tema_rng_below(r, (uint64_t)w->n_cat);
        while (contains(fav, k, c));
        fav[k] = c;
        fav_w[k] = 0.5 + tema_rng_uniform(r);
        total += fav_w[k];
    }
    double p_y = 0.3 + 0.4 * tema_rng_uniform(r);
    for (int32_t t = 0; t < len; t++) {
        int dom = tema_rng_uniform(r) < p_y;
        int32_t item = -1;
        for (int attempt = 0; attempt < 16; attempt++) {
            double u = tema_rng_uniform(r);
            if (t > 0 && attempt == 0 && u < 0.4) item = w->succ[dom][seq[t - 1]];
            else if (t > 0 && attempt < 4 && u < 0.65) item = draw_item(w, dom, w->cat[seq[t - 1]], r);
            else {
                int32_t c;
                if (tema_rng_uniform(r) < 0.1) c = (int32_t)tema_rng_below(r, (uint64_t)w->n_cat);
                else {
                    double v = tema_rng_uniform(r) * total;
                    int k = 0;
                    while (k < n_fav - 1 && v >= fav_w[k]) v -= fav_w[k++];
                    c = fav[k];
                }
                item = attempt < 12 ? draw_item(w, dom, c, r)
                                    : (dom == 0 ? (int32_t)tema_rng_below(r, (uint64_t)w->n_x)
                                                : w->n_x + (int32_t)tema_rng_below(r, (uint64_t)w->n_y));
            }
            if (!contains(seq, t, item)) break;
        }
        seq[t] = item;
    }
}

static void write_entries(tema_sb *b, int32_t user, const int32_t *seq, const int64_t *ts, int32_t n)
{
    sb_int(b, user);
    tema_sb_addn(b, "\t", 1);
    sb_int(b, user); /* seqid: one window per user, shared by its train and eval lines */
    for (int32_t i = 0; i < n; i++) {
        tema_sb_addn(b, "\t", 1);
        sb_int(b, seq[i]);
        tema_sb_addn(b, "|", 1);
        sb_int(b, ts[i]);
        tema_sb_addn(b, "|", 1);
        sb_date(b, ts[i]);
        tema_sb_addn(b, "|", 1);
    }
    tema_sb_addn(b, "\n", 1);
}

static void write_title(tema_sb *b, const theme *th, int dom, tema_rng *r)
{
    const char *const *mods = dom ? th->y_mod : th->x_mod;
    const char *const *nouns = dom ? th->y_noun : th->x_noun;
    const char *const *sizes = dom ? th->y_size : th->x_size;
    const char *const *brands = dom ? Y_BRANDS : X_BRANDS;
    if (tema_rng_below(r, 2)) {
        tema_sb_add(b, brands[tema_rng_below(r, 8)]);
        tema_sb_addn(b, " ", 1);
    }
    tema_sb_add(b, mods[tema_rng_below(r, 6)]);
    tema_sb_addn(b, " ", 1);
    tema_sb_add(b, nouns[tema_rng_below(r, 6)]);
    const char *size = sizes[tema_rng_below(r, 5)];
    if (*size) {
        tema_sb_addn(b, " ", 1);
        tema_sb_add(b, size);
    }
}

static void write_category(tema_sb *b, int32_t c)
{
    tema_sb_add(b, THEMES[c % N_THEMES].name);
    if (c >= N_THEMES) tema_sb_printf(b, " %d", c / N_THEMES + 1);
}

static tema_status check_opts(const tema_synth_opts *o, tema_err *err)
{
    if (o->n_users < 1 || o->n_x < 2 || o->n_y < 2 || o->n_categories < 1)
        return tema_fail(err, TEMA_EINVAL,
                         "synthetic data: need users >= 1, items >= 2 per domain and categories >= 1, got "
                         "%d users, %d / %d items, %d categories",
                         o->n_users, o->n_x, o->n_y, o->n_categories);
    if ((int64_t)o->n_x + o->n_y > 100000000 || o->n_users > 100000000)
        return tema_fail(err, TEMA_EINVAL, "synthetic data: at most 100,000,000 users and items (hint: lower --users/--items-x/--items-y)");
    if (o->min_len < 2 || o->max_len < o->min_len || o->max_len > 100000)
        return tema_fail(err, TEMA_EINVAL,
                         "synthetic data: lengths must satisfy 2 <= min_len <= max_len <= 100000, got %d..%d "
                         "(hint: an evaluation line needs a history and a target)",
                         o->min_len, o->max_len);
    if ((int64_t)o->n_users * o->max_len > 2000000000)
        return tema_fail(err, TEMA_EINVAL, "synthetic data: users x max_len must stay below 2e9 interactions");
    if (!(o->valid_frac >= 0 && o->test_frac >= 0 && o->valid_frac + o->test_frac <= 1.0))
        return tema_fail(err, TEMA_EINVAL,
                         "synthetic data: valid_frac %g and test_frac %g must be >= 0 and sum to at most 1",
                         o->valid_frac, o->test_frac);
    return TEMA_OK;
}

static tema_status write_one(const char *dir, const char *name, tema_sb *b, tema_err *err)
{
    if (b->oom) return tema_fail(err, TEMA_ENOMEM, "out of memory generating %s/%s", dir, name);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    tema_status st = tema_write_file_atomic(p, b->p ? b->p : "", b->n, err);
    free(p);
    return st;
}

enum { F_ALIST, F_BLIST, F_USERS, F_ITEMS, F_TRAIN, F_VALID, F_TESTDATA, F_README, N_FILES };
static const char *const FILE_NAMES[N_FILES] = {"Alist.txt", "Blist.txt", "userlist.txt", "items.tsv",
                                                "traindata_new.txt", "validdata_new.txt", "testdata_new.txt",
                                                "README.md"};

/* ASINs and user names: an affine bijection mod 36^k keeps them unique for any seed. */
static const uint64_t M8 = 2821109907456ull;         /* 36^8 */
static const uint64_t M12 = 4738381338321616896ull;  /* 36^12 */

static uint64_t name_mix(const tema_synth_opts *o) { return o->seed * 0x9E3779B97F4A7C15ull; }

/* Alist.txt, Blist.txt and items.tsv (titles drawn from r). */
static void write_items(tema_sb *b, const tema_synth_opts *o, const world *w, tema_rng *r)
{
    const int32_t n_items = o->n_x + o->n_y;
    const uint64_t mix = name_mix(o);
    tema_sb_add(&b[F_ITEMS], "item\tdomain\tasin\ttitle\tcategories\n");
    for (int32_t i = 0; i < n_items; i++) {
        int dom = i >= o->n_x;
        tema_sb *l = &b[dom ? F_BLIST : F_ALIST];
        sb_int(l, i); /* raw id: this generator's own global id */
        tema_sb_add(l, "\tB0");
        size_t asin_at = l->n;
        sb_base36(l, ((uint64_t)i * 25214903917ull + mix % M8) % M8, 8);
        tema_sb_addn(l, "\t", 1);
        sb_int(l, dom ? i - o->n_x : i);
        tema_sb_addn(l, "\n", 1);
        tema_sb *it = &b[F_ITEMS];
        sb_int(it, i);
        tema_sb_add(it, dom ? "\tY\tB0" : "\tX\tB0");
        if (!l->oom) tema_sb_addn(it, l->p + asin_at, 8);
        tema_sb_addn(it, "\t", 1);
        write_title(it, &THEMES[w->cat[i] % N_THEMES], dom, r);
        tema_sb_addn(it, "\t", 1);
        write_category(it, w->cat[i]);
        tema_sb_addn(it, "\n", 1);
    }
}

static void write_users(tema_sb *users, const tema_synth_opts *o)
{
    const uint64_t mix = name_mix(o);
    for (int32_t u = 0; u < o->n_users; u++) {
        tema_sb_add(users, "A");
        sb_base36(users, ((uint64_t)u * 25214903917ull + (mix >> 7) % M12) % M12, 12);
        tema_sb_addn(users, "\t", 1);
        sb_int(users, u);
        tema_sb_addn(users, "\n", 1);
    }
}

/* role[u]: 0 train only, 1 valid, 2 test, for a random permutation perm of the users. */
static void assign_roles(const tema_synth_opts *o, tema_rng *r, int32_t *perm, uint8_t *role, int32_t *n_valid_out,
                         int32_t *n_test_out)
{
    for (int32_t u = 0; u < o->n_users; u++) perm[u] = u;
    for (int32_t i = o->n_users - 1; i > 0; i--) {
        int32_t j = (int32_t)tema_rng_below(r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int32_t n_valid = (int32_t)(o->valid_frac * o->n_users + 0.5);
    int32_t n_test = (int32_t)(o->test_frac * o->n_users + 0.5);
    if (n_valid + n_test > o->n_users) n_test = o->n_users - n_valid;
    for (int32_t i = 0; i < n_valid + n_test; i++) role[perm[i]] = i < n_valid ? 1 : 2;
    *n_valid_out = n_valid;
    *n_test_out = n_test;
}

/* Every user's sequence into the data files (seq, ts: scratch of max_len). History scheme of
 * the *-c2dsr bundles: training holds the train-only users' whole sequences and every
 * evaluation line minus its target. */
static void write_sequences(tema_sb *b, const tema_synth_opts *o, const world *w, tema_rng *r, const uint8_t *role,
                            int32_t *seq, int64_t *ts)
{
    const int64_t day = 86400;
    for (int32_t u = 0; u < o->n_users; u++) {
        int32_t len = o->min_len + (int32_t)tema_rng_below(r, (uint64_t)(o->max_len - o->min_len) + 1);
        user_sequence(w, r, len, seq);
        int64_t d = 14610 + (int64_t)tema_rng_below(r, 4 * 365); /* from 2010-01-01 */
        for (int32_t t = 0; t < len; t++) {
            ts[t] = d * day;
            d += 1 + (int64_t)tema_rng_below(r, 20);
        }
        write_entries(&b[F_TRAIN], u, seq, ts, role[u] ? len - 1 : len);
        if (role[u]) write_entries(&b[role[u] == 1 ? F_VALID : F_TESTDATA], u, seq, ts, len);
    }
}

static void write_readme(tema_sb *rd, const tema_synth_opts *o, int32_t n_valid, int32_t n_test)
{
    tema_sb_add(rd, "# Synthetic two-domain dataset (tema data synth)\n\n");
    tema_sb_add(rd, "Generated by `tema data synth`; X = food-like items, Y = kitchen-like items, categories shared by both.\n");
    tema_sb_add(rd, "Layout and line formats as in the C2DSR bundles (see ../shared/data/README.md); `items.tsv` has\n");
    tema_sb_add(rd, "generated titles and the category of every item. Scheme **history**: every evaluated user has one\n");
    tema_sb_add(rd, "line in `validdata_new.txt` or `testdata_new.txt`, and `traindata_new.txt` holds the train-only\n");
    tema_sb_add(rd, "users' full sequences plus every evaluation line minus its target.\n\n");
    tema_sb_add(rd, "| option | value |\n|---|---|\n");
    tema_sb_printf(rd, "| seed | %llu |\n", (unsigned long long)o->seed);
    tema_sb_printf(rd, "| users | %d (valid %d, test %d) |\n", o->n_users, n_valid, n_test);
    tema_sb_printf(rd, "| items X / Y | %d / %d |\n", o->n_x, o->n_y);
    tema_sb_printf(rd, "| categories | %d |\n", o->n_categories);
    tema_sb_printf(rd, "| sequence length | %d..%d |\n", o->min_len, o->max_len);
}

tema_status tema_synth_write(const tema_synth_opts *o, const char *dir, tema_err *err)
{
    tema_status st = check_opts(o, err);
    if (st != TEMA_OK) return st;
    st = tema_mkdirs(dir, err);
    if (st != TEMA_OK) return st;

    tema_rng r;
    tema_rng_seed(&r, o->seed);
    world w;
    st = world_build(&w, o, &r, err);
    if (st != TEMA_OK) return st;

    tema_sb b[N_FILES];
    memset(b, 0, sizeof b);
    write_items(b, o, &w, &r);
    write_users(&b[F_USERS], o);
    uint8_t *role = calloc((size_t)o->n_users, 1);
    int32_t *perm = malloc((size_t)o->n_users * sizeof *perm), *seq = malloc((size_t)o->max_len * sizeof *seq);
    int64_t *ts = malloc((size_t)o->max_len * sizeof *ts);
    if (!role || !perm || !seq || !ts) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory generating %d users", o->n_users);
    } else {
        int32_t n_valid, n_test;
        assign_roles(o, &r, perm, role, &n_valid, &n_test);
        write_sequences(b, o, &w, &r, role, seq, ts);
        write_readme(&b[F_README], o, n_valid, n_test);
        for (int f = 0; f < N_FILES && st == TEMA_OK; f++) st = write_one(dir, FILE_NAMES[f], &b[f], err);
    }
    for (int f = 0; f < N_FILES; f++) free(b[f].p);
    free(role);
    free(perm);
    free(seq);
    free(ts);
    world_free(&w);
    return st;
}

bool tema_synth_is_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    struct stat sb;
    return !strcmp(base, "synthetic") && stat(path, &sb) != 0;
}

static void remove_flat_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[PATH_MAX];
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
        }
        closedir(dp);
    }
    rmdir(dir);
}

tema_status tema_synth_dataset(const char *results_dir, uint64_t seed, char *dir, size_t cap, tema_err *err)
{
    if (snprintf(dir, cap, "%s/_data/synthetic-%" PRIu64, results_dir && *results_dir ? results_dir : "results",
                 seed) >= (int)cap)
        return tema_fail(err, TEMA_EINVAL, "%s: results folder path too long", results_dir);
    char probe[PATH_MAX + 32], tmp[PATH_MAX + 32];
    struct stat sb;
    snprintf(probe, sizeof probe, "%s/traindata_new.txt", dir);
    if (stat(probe, &sb) == 0) return TEMA_OK;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    tema_synth_opts so;
    tema_synth_defaults(&so);
    so.seed = seed;
    tema_status st = tema_synth_write(&so, tmp, err);
    if (st != TEMA_OK) return st;
    if (rename(tmp, dir) != 0) {
        remove_flat_dir(tmp); /* another process made it meanwhile: theirs is the same data */
        return stat(probe, &sb) == 0 ? TEMA_OK
                                     : tema_fail(err, TEMA_EIO, "%s: cannot put the synthetic dataset in place: %s",
                                                 dir, strerror(errno));
    }
    fprintf(stderr, "tema: wrote synthetic dataset (seed %" PRIu64 ") to %s\n", seed, dir);
    return TEMA_OK;
}
